/**
 * A nats-server left behind by a Sluice process that was killed (SIGKILL, OOM,
 * power cut of the parent only) keeps the embedded data dir and port, and the
 * next `sluice run` would fail with "address already in use". The embedded
 * server writes its pid file into its own data dir; before starting, we stop
 * a live nats-server that is still serving that same data dir (SIGTERM first,
 * so JetStream flushes, SIGKILL only past a deadline). Anything else — a pid
 * reused by another program, a server of another data dir — is left alone.
 *
 * A server whose owner is still running is not stale: `sluice run` calls
 * this only after it took the data dir's lock (libs/runtime data-dir-lock.ts),
 * which a live owner holds, so a second `sluice run` stops at the lock and
 * never gets here.
 */
import { readFile, rm } from 'node:fs/promises';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function commandLineOf(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
}

/** Stop a leftover embedded nats-server using `configFile`; returns its pid if there was one. */
export async function stopStaleNatsServer(pidFile: string, configFile: string, deadlineMs = 10_000) {
  const pid = Number.parseInt((await readFile(pidFile, 'utf8').catch(() => '')).trim(), 10);
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || !alive(pid)) {
    await rm(pidFile, { force: true });
    return undefined;
  }
  const cmd = await commandLineOf(pid);
  if (!cmd.includes('nats-server') || !cmd.includes(configFile)) return undefined;
  process.kill(pid, 'SIGTERM');
  const until = Date.now() + deadlineMs;
  while (alive(pid) && (await commandLineOf(pid)) !== '' && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
  }
  if (alive(pid) && (await commandLineOf(pid)) !== '') process.kill(pid, 'SIGKILL');
  await rm(pidFile, { force: true });
  return pid;
}
