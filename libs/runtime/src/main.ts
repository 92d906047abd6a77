/**
 * runMain: the process entry used by `sluice run` and each service's main.ts.
 * Loads the config (or fails naming the key and the fix), starts the runtime,
 * and turns SIGTERM/SIGINT into a graceful stop: stop accepting, finish
 * in-flight work, ack nothing unfinished, exit 0. A second signal exits at
 * once (the operator insists; JetStream redelivers whatever was not acked).
 * SIGINT is the terminal's Ctrl-C (SIGHUP, the terminal closing, too): the embedded nats-server is in a process
 * group of its own and does not get it, so it is still there for the acks of
 * the work finished during the stop, and is stopped last.
 * When the runtime reports a fatal condition (the embedded nats-server keeps
 * dying) the process stops the same way and exits 1, for a supervisor.
 * Start-up failures (a port in use, the data dir locked by another sluice)
 * are one line on stderr and exit 1.
 */
import { ConfigError, type SluiceConfig } from '@sluice/config';
import { type Runtime, startRuntime } from './runtime.ts';
import type { ServiceDefinition } from './service.ts';
import { followPrimary, startWorkers, type Workers, workerIndex } from './worker-processes.ts';

export interface MainOptions {
  loadConfig: () => { config: SluiceConfig; baseDir?: string; file?: string; isExample?: boolean };
  services: ServiceDefinition[];
}

/** How long a stop forced by a fatal condition may take before the process just exits 1. */
const FATAL_STOP_DEADLINE_MS = 5000;

export async function runMain(opts: MainOptions): Promise<Runtime | undefined> {
  let loaded: { config: SluiceConfig; baseDir?: string; file?: string; isExample?: boolean };
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
  let fatal: Error | undefined;
  let stopOnFatal: (() => void) | undefined;
  try {
    runtime = await startRuntime({
      config: loaded.config,
      services: opts.services,
      baseDir: loaded.baseDir,
      // The example config is not watched: it is no operator's file.
      configFile: loaded.isExample ? undefined : loaded.file,
      onFatal: (err) => {
        fatal = err;
        stopOnFatal?.();
      },
    });
  } catch (err) {
    process.stderr.write(`sluice: start-up failed: ${oneLine(err)}\n`);
    // Leave now: a half-started runtime may hold timers or sockets.
    process.exit(1);
  }
  // processes > 1: this primary starts the workers, each a copy of this command (worker-processes.ts).
  let workers: Workers | undefined;
  if (workerIndex() === 0 && loaded.config.processes > 1) {
    workers = startWorkers({
      config: loaded.config,
      nats: { url: runtime.natsUrl, token: runtime.embedded?.token },
      log: runtime.log,
    });
  }
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      runtime.log.warn({ signal: sig }, 'second signal: exiting now; unacked work will be redelivered');
      process.exit(1);
    }
    runtime.log.info({ signal: sig }, 'graceful shutdown requested');
    // Workers first: they drain while this process still runs the embedded nats-server.
    (workers ? workers.stop() : Promise.resolve())
      .then(() => runtime.stop())
      .then(
        () => {
          const code = fatal ? 1 : 0;
          if (fatal) process.stderr.write(`sluice: stopped: ${fatal.message}\n`);
          process.exitCode = code;
          // Let pino flush, then leave even if a stray handle lingers.
          setTimeout(() => process.exit(code), 50).unref();
        },
        (err: unknown) => {
          process.stderr.write(`sluice: shutdown error: ${(err as Error).message}\n`);
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // The terminal closed: the embedded nats-server (own process group) does not get this, so stop
  // the same way rather than die and leave it behind.
  process.on('SIGHUP', onSignal);
  followPrimary(() => onSignal('SIGTERM'));
  stopOnFatal = () => {
    // NATS is gone for good: nothing can be acked, and stages waiting on the dead connection would
    // only delay the exit the supervisor needs to see.
    setTimeout(() => {
      process.stderr.write(`sluice: stopped: ${fatal?.message}\n`);
      process.exit(1);
    }, FATAL_STOP_DEADLINE_MS).unref();
    onSignal('SIGTERM');
  };
  if (fatal) stopOnFatal();
  return runtime;
}

/** An error as one line: the first line of its message, EADDRINUSE spelled out. */
function oneLine(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e?.code === 'EADDRINUSE')
    return `${e.address ?? ''}:${e.port ?? ''} is already in use by another program`;
  return String(e?.message ?? err).split('\n')[0]!;
}
