/**
 * The example configuration (config/sluice.example.yaml at the repository
 * root): a commented, working setup for example.org on unprivileged loopback
 * ports with an embedded NATS, which `sluice run` uses when no config file is
 * given. Its tests keep it valid, so the tour in the README always starts.
 */
import { fileURLToPath } from 'node:url';
import { loadConfig } from './loader.ts';
import type { SluiceConfig } from './schema.ts';

/** Absolute path of config/sluice.example.yaml. */
export const exampleConfigPath: string = fileURLToPath(
  new URL('../../../config/sluice.example.yaml', import.meta.url),
);

/** The example configuration, with SLUICE_* overrides from `env` (default: process.env) applied. */
export function exampleConfig(env: NodeJS.ProcessEnv = process.env): SluiceConfig {
  return loadConfig({ file: exampleConfigPath, env });
}
