/**
 * @sluice/log: the JSON-lines logger (with trace and span ids on every line)
 * and the redactor that decides how addresses and IPs appear in logs.
 */
export { activeTraceFields, createLogger, type Logger, type LoggerOptions } from './logger.ts';
export { createRedactor, REDACTED, type RedactionMode, type Redactor } from './redactor.ts';
