/**
 * @sluice/config: the configuration schema, its loader (YAML file, SLUICE_*
 * environment overrides, secrets from files and variables) and the example
 * configuration. Services receive a validated `SluiceConfig`.
 */
export { ConfigError, type ConfigProblem, formatPath } from './config-error.ts';
export { renderConfigDocs } from './docs.ts';
export { ENV_PREFIX } from './env-overrides.ts';
export { exampleConfig, exampleConfigPath } from './example.ts';
export { type LoadConfigOptions, loadConfig, type ParseConfigOptions, parseConfig } from './loader.ts';
export {
  type ConfigInput,
  configSchema,
  type SluiceConfig,
  secretSchema,
  transportSchema,
} from './schema.ts';
export { srsDomainOf } from './srs-domain.ts';
