/**
 * The logging surface the bus needs. A pino logger (what @sluice/log's
 * createLogger returns) satisfies it structurally; keeping the bus on this
 * narrow interface lets tests pass a recording logger and keeps the bus free of
 * a logger implementation. Every call is (fields, message), pino's style.
 */
export interface BusLog {
  debug(fields: object, msg?: string): void;
  info(fields: object, msg?: string): void;
  warn(fields: object, msg?: string): void;
  error(fields: object, msg?: string): void;
}

/** A logger that drops everything (for short-lived CLI connections). */
export const silentBusLog: BusLog = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
