/**
 * runMain: the process entry used by `sluice run` and each service's main.ts.
 * Loads the config (or fails naming the key and the fix), starts the runtime,
 * and turns SIGTERM/SIGINT into a graceful stop: stop accepting, finish
 * in-flight work, ack nothing unfinished, exit 0. A second signal exits at
 * once (the operator insists; JetStream redelivers whatever was not acked).
 */
import { ConfigError, type SluiceConfig } from '@sluice/config';
import { type Runtime, startRuntime } from './runtime.ts';
import type { ServiceDefinition } from './service.ts';

export interface MainOptions {
  loadConfig: () => { config: SluiceConfig; baseDir?: string };
  services: ServiceDefinition[];
}

export async function runMain(opts: MainOptions): Promise<Runtime | undefined> {
  let loaded: { config: SluiceConfig; baseDir?: string };
  try {
    loaded = opts.loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      process.exitCode = 2;
      return undefined;
    }
    throw err;
  }
  let runtime: Runtime;
  try {
    runtime = await startRuntime({ config: loaded.config, services: opts.services, baseDir: loaded.baseDir });
  } catch (err) {
    process.stderr.write(`sluice: start-up failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
    return undefined;
  }
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      runtime.log.warn({ signal: sig }, 'second signal: exiting now; unacked work will be redelivered');
      process.exit(1);
    }
    runtime.log.info({ signal: sig }, 'graceful shutdown requested');
    runtime.stop().then(
      () => {
        process.exitCode = 0;
        // Let pino flush, then leave even if a stray handle lingers.
        setTimeout(() => process.exit(0), 50).unref();
      },
      (err: unknown) => {
        process.stderr.write(`sluice: shutdown error: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return runtime;
}
