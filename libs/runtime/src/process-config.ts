/**
 * Which configuration a process runs with: `--config FILE` (or `-c`), else the
 * SLUICE_CONFIG environment variable, else the documented example
 * configuration (config/sluice.example.yaml), so `sluice run` works on a fresh
 * machine with nothing else. Relative paths in a config file (the embedded
 * NATS data dir) are taken from the directory the process was started in.
 */
import { exampleConfigPath, loadConfig, type SluiceConfig } from '@sluice/config';

export interface ProcessConfig {
  config: SluiceConfig;
  file: string;
  isExample: boolean;
  baseDir: string;
}

export function loadProcessConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ProcessConfig {
  const chosen = file ?? env.SLUICE_CONFIG;
  const path = chosen && chosen.length > 0 ? chosen : exampleConfigPath;
  return { config: loadConfig({ file: path, env }), file: path, isExample: !chosen, baseDir: process.cwd() };
}

/** Pull `--config FILE` / `-c FILE` / `--config=FILE` out of an argv list. */
export function configArg(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config' || a === '-c') return argv[i + 1];
    if (a.startsWith('--config=')) return a.slice('--config='.length);
  }
  return undefined;
}
