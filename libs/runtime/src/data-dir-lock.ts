/**
 * The lock that makes one `sluice run` the owner of an embedded NATS data dir.
 * Two processes on one JetStream store corrupt it, and a second `sluice run`
 * used to stop the first one's live nats-server as if it were a leftover.
 *
 * The lock is the file DIR/sluice.lock holding the owner's pid and its start
 * time (field 22 of /proc/PID/stat, so a pid reused by another program does
 * not count as the owner). It is created atomically (link(2) of a finished
 * temp file: never seen half-written). A lock whose owner is gone is stale
 * and taken over; then, and only then, the runtime may stop an orphaned
 * nats-server of that dir (stale-nats-server.ts).
 */
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const LOCK_FILE = 'sluice.lock';

export interface LockOwner {
  pid: number;
  /** Start time of the process in clock ticks since boot ('' where /proc is missing). */
  started: string;
}

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
}

/** Start time of a live process, or undefined when there is no such process. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) {
    try {
      process.kill(pid, 0);
      return ''; // alive, but no /proc to tell its start time
    } catch {
      return undefined;
    }
  }
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

async function readOwner(file: string): Promise<LockOwner | undefined> {
  try {
    const o = JSON.parse(await readFile(file, 'utf8')) as Partial<LockOwner>;
    return typeof o.pid === 'number' ? { pid: o.pid, started: String(o.started ?? '') } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the recorded owner is still the process that wrote the lock. */
async function ownerAlive(o: LockOwner): Promise<boolean> {
  const started = await processStartTime(o.pid);
  return started !== undefined && (o.started === '' || started === '' || started === o.started);
}

export interface DataDirLock {
  readonly file: string;
  release(): Promise<void>;
}

/** Take the lock of `dir` for this process, or throw DataDirLockedError naming the dir and the owner. */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, started: (await processStartTime(process.pid)) ?? '' };
  const temp = `${file}.${process.pid}`;
  await writeFile(temp, `${JSON.stringify(me)}\n`);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(temp, file);
        return {
          file,
          release: async () => {
            const o = await readOwner(file);
            if (o?.pid === process.pid) await rm(file, { force: true });
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = await readOwner(file);
      if (owner && owner.pid !== process.pid && (await ownerAlive(owner))) {
        throw new DataDirLockedError(
          `${dir} is in use by another sluice (pid ${owner.pid}); stop it first or give this one another nats.embedded.dataDir`,
        );
      }
      // Stale (owner gone, or unreadable): move it aside, so that of two starting processes
      // only one removes it, then try again.
      await rename(file, `${file}.stale.${process.pid}`).catch(() => {});
      await rm(`${file}.stale.${process.pid}`, { force: true });
    }
    throw new DataDirLockedError(`${dir}: cannot take ${LOCK_FILE} (another sluice is starting?)`);
  } finally {
    await rm(temp, { force: true });
  }
}
