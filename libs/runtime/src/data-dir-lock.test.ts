/**
 * The data-dir lock: a live owner keeps it (the second taker fails naming the
 * dir and the pid), a dead owner's lock or one whose pid now belongs to a
 * different process (other start time) is taken over, and release() frees it.
 * Real processes stand for the owners.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DataDirLockedError, LOCK_FILE, lockDataDir, processStartTime } from './data-dir-lock.ts';

const dir = mkdtempSync(join(tmpdir(), 'sluice-lock-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function sleeper() {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, exited };
}

test('a live owner keeps the lock; the second taker is told the dir and the pid', async () => {
  const owner = sleeper();
  try {
    const started = await processStartTime(owner.child.pid!);
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: owner.child.pid, started }));
    await assert.rejects(
      lockDataDir(dir),
      (err: Error) =>
        err instanceof DataDirLockedError &&
        err.message.includes(dir) &&
        err.message.includes(`pid ${owner.child.pid}`),
    );
  } finally {
    owner.child.kill('SIGKILL');
    await owner.exited;
  }
  // The same lock, now that its owner is dead, is stale: taken over.
  const lock = await lockDataDir(dir);
  await lock.release();
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
});

test('a pid reused by another process (other start time) does not hold the lock', async () => {
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.ppid, started: '1' }));
  const lock = await lockDataDir(dir);
  const owner = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as { pid: number; started: string };
  assert.equal(owner.pid, process.pid);
  assert.equal(owner.started, await processStartTime(process.pid));
  await lock.release();
});
