/**
 * The embedded nats-server of `sluice run` (nats.servers empty), owned and
 * supervised by this process:
 *
 * - Start: lock the data dir (data-dir-lock.ts: a second `sluice run` on the
 *   same dir refuses to start and never touches this one's server), load or
 *   create the client token (nats-access.ts), stop an orphaned server of the
 *   dir (safe now: its owner is gone, we hold the lock), start the server.
 * - Supervision: if the server dies while Sluice runs (kill -9, OOM), it is
 *   started again on the same port, data dir and token, after 0.25, 0.5, 1,
 *   2, 4 s; the bus reconnects by itself and the stages resume. More than
 *   `maxRestarts` deaths within `restartWindowMs` mean something is wrong
 *   with the machine or the store: `onGiveUp` is called and `sluice run`
 *   exits non-zero so that a supervisor sees it (docs/decisions/0007).
 * - Stop: called last, after the services finished their in-flight work and
 *   the bus drained; SIGTERM to the server, then the lock is released.
 */

import { type NatsServerHandle, spawnNatsServer } from '@sluice/bus';
import type { SluiceConfig } from '@sluice/config';
import type { Logger } from '@sluice/log';
import { lockDataDir } from './data-dir-lock.ts';
import { embeddedToken } from './nats-access.ts';

export interface EmbeddedNatsOptions {
  settings: SluiceConfig['nats']['embedded'];
  /** Absolute data dir. */
  dataDir: string;
  /** JetStream max_file_store: the store budget (docs/decisions/0008). */
  maxFileStoreBytes?: number;
  log: Logger;
  /** The server keeps dying: Sluice cannot work. */
  onGiveUp: (err: Error) => void;
  /** Restarts allowed within restartWindowMs (default 5 in 60 s). */
  maxRestarts?: number;
  restartWindowMs?: number;
}

export interface EmbeddedNats {
  url: string;
  token: string;
  syncAlways: boolean;
  /** Pid of the server running now. */
  pid(): number;
  stop(): Promise<void>;
}

const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 4000;

export async function startEmbeddedNats(opts: EmbeddedNatsOptions): Promise<EmbeddedNats> {
  const { settings, dataDir, log } = opts;
  const maxRestarts = opts.maxRestarts ?? 5;
  const windowMs = opts.restartWindowMs ?? 60_000;
  const lock = await lockDataDir(dataDir);
  let stopping = false;
  let current: NatsServerHandle;
  let token: string;
  const spawnOnce = () =>
    spawnNatsServer({
      binary: settings.binary,
      host: settings.host,
      port: settings.port,
      storeDir: dataDir,
      syncAlways: settings.syncAlways,
      maxFileStoreBytes: opts.maxFileStoreBytes,
      auth: { token },
      ownProcessGroup: true,
      onStaleServer: (pid) =>
        log.warn(
          { pid },
          'stopped a nats-server left running on this data dir by a previous sluice that died',
        ),
    });
  try {
    token = await embeddedToken(dataDir);
    current = await spawnOnce();
  } catch (err) {
    await lock.release();
    throw err;
  }

  const deaths: number[] = [];
  // The restart in progress, if any (stop() waits for it), and a way to cut its backoff short.
  let restarting: Promise<void> | undefined;
  let wakeUp = () => {};
  const supervise = (handle: NatsServerHandle) => {
    void handle.exited.then((code) => {
      if (stopping) return;
      restarting = restartAfterDeath(handle, code).finally(() => {
        restarting = undefined;
      });
    });
  };
  const restartAfterDeath = async (handle: NatsServerHandle, code: number | null) => {
    const now = Date.now();
    deaths.push(now);
    while (deaths.length > 0 && deaths[0]! < now - windowMs) deaths.shift();
    log.error({ pid: handle.pid, code }, 'embedded nats-server died');
    while (!stopping) {
      if (deaths.length > maxRestarts) {
        opts.onGiveUp(
          new Error(`the embedded nats-server died ${deaths.length} times within ${windowMs / 1000} s`),
        );
        return;
      }
      const wait = Math.min(FIRST_BACKOFF_MS * 2 ** (deaths.length - 1), MAX_BACKOFF_MS);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, wait);
        wakeUp = () => {
          clearTimeout(timer);
          r();
        };
      });
      if (stopping) return;
      try {
        current = await spawnOnce();
        log.warn({ pid: current.pid, restarts: deaths.length }, 'embedded nats-server restarted');
        supervise(current);
        return;
      } catch (err) {
        deaths.push(Date.now());
        log.error({ err }, 'embedded nats-server failed to restart');
      }
    }
  };
  supervise(current);

  return {
    url: current.url,
    token,
    syncAlways: current.syncAlways,
    pid: () => current.pid,
    async stop() {
      stopping = true;
      wakeUp();
      await restarting; // a server being started now is `current` afterwards
      await current.stop();
      await lock.release();
    },
  };
}
