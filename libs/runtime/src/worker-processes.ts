/**
 * `processes: N`: the process `sluice run` started (the primary) starts N-1
 * more of itself (workers), each running every service of the command, so
 * one machine's cores all do mail work. A Node process runs JavaScript on one
 * core; Postfix's answer is many small processes, ours is N copies of the
 * whole pipeline joined by the same NATS (docs/decisions/0047).
 *
 * - A worker is the same command line with the same config, plus environment
 *   overrides: the primary's NATS (the embedded server's URL and token, or the
 *   configured servers), so no worker starts a nats-server or takes the data
 *   dir's lock; its HTTP endpoint on `http.listen.port + index` (each process
 *   has its own metrics); an instance name of its own when one is configured.
 * - The SMTP listeners of every process bind with SO_REUSEPORT
 *   (`reusePortFor`), and the kernel spreads connections over them.
 * - Everything the services share already works across replicas (KV
 *   counters, claims, queue groups, the durable consumers), exactly as with
 *   several pods.
 * - The primary supervises: a worker that exits while the primary runs is
 *   started again after a pause that doubles up to 30 s. A worker whose
 *   primary is gone (the IPC channel closes) stops gracefully. On a signal the
 *   primary stops its workers first (each drains as on its own signal) and
 *   only then itself, so the embedded nats-server is still there for every
 *   worker's last acks.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { SluiceConfig } from '@sluice/config';
import type { Logger } from '@sluice/log';

/** The environment variable that marks a worker and gives its index (1..N-1). */
export const WORKER_ENV = 'SLUICE_WORKER';

const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 30_000;

/** This process' worker index: 0 for the primary (or a single process). */
export function workerIndex(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env[WORKER_ENV] ?? 0);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** Whether listeners must share their port with the other processes of this `sluice run`. */
export function reusePortFor(config: Pick<SluiceConfig, 'processes'>): boolean {
  return config.processes > 1;
}

/** The environment of worker `index`: the parent's, with the overrides that make it a worker. */
export function workerEnv(
  config: SluiceConfig,
  nats: { url: string; token?: string },
  index: number,
  env: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, [WORKER_ENV]: String(index) };
  if (config.nats.servers.length === 0) {
    out.SLUICE_NATS__SERVERS = JSON.stringify([nats.url]);
    if (nats.token) out.SLUICE_NATS__TOKEN = nats.token;
  }
  if (config.http.listen && config.http.listen.port !== 0)
    out.SLUICE_HTTP__LISTEN__PORT = String(config.http.listen.port + index);
  if (config.instance) out.SLUICE_INSTANCE = `${config.instance}-w${index}`;
  return out;
}

export interface Workers {
  /** Stop every worker (SIGTERM, each drains) and resolve when all have exited. */
  stop(): Promise<void>;
  /** The workers' pids now (tests, logs). */
  pids(): number[];
}

/** Start workers 1..processes-1 of this command. */
export function startWorkers(opts: {
  config: SluiceConfig;
  nats: { url: string; token?: string };
  log: Logger;
  /** Command line of a worker (default: this process'). */
  argv?: readonly string[];
}): Workers {
  const argv = opts.argv ?? [...process.execArgv, ...process.argv.slice(1)];
  const children = new Map<number, ChildProcess>();
  let stopping = false;
  const exited = new Map<number, Promise<void>>();

  const launch = (index: number, pause: number) => {
    const child = spawn(process.execPath, argv, {
      env: workerEnv(opts.config, opts.nats, index),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.set(index, child);
    const started = Date.now();
    opts.log.info({ worker: index, pid: child.pid }, 'worker process started');
    exited.set(
      index,
      new Promise<void>((resolve) => {
        child.once('exit', (code, signal) => {
          resolve();
          if (stopping) {
            opts.log.info({ worker: index, code, signal }, 'worker process stopped');
            return;
          }
          // A worker that ran a while gets the short pause again; one that keeps dying waits longer.
          const next =
            Date.now() - started > RESTART_MAX_MS ? RESTART_MIN_MS : Math.min(pause * 2, RESTART_MAX_MS);
          opts.log.error(
            { worker: index, code, signal, restartInMs: next },
            'worker process exited: restarting',
          );
          setTimeout(() => {
            if (!stopping) launch(index, next);
          }, next).unref();
        });
      }),
    );
    child.on('error', (err) => opts.log.error({ worker: index, err }, 'worker process failed to start'));
  };
  for (let i = 1; i < opts.config.processes; i++) launch(i, RESTART_MIN_MS / 2);

  return {
    pids: () => [...children.values()].flatMap((c) => (c.pid === undefined ? [] : [c.pid])),
    async stop() {
      stopping = true;
      for (const child of children.values()) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      }
      await Promise.all(exited.values());
    },
  };
}

/** In a worker: stop gracefully when the primary is gone (its IPC channel closed). */
export function followPrimary(onGone: () => void): void {
  if (workerIndex() === 0 || !process.connected) return;
  process.once('disconnect', onGone);
  // The channel must not keep a stopping worker alive.
  process.channel?.unref();
}
