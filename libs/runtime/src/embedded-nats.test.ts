/**
 * Supervision of the embedded nats-server (real nats-server): killed, it is
 * started again on the same port with the same token; killed more often than
 * allowed within the window, the runtime is told to give up.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { createLogger } from '@sluice/log';
import { freePort, waitUntil } from '@sluice/test-harness';
import { startEmbeddedNats } from './embedded-nats.ts';

const dir = mkdtempSync(join(tmpdir(), 'sluice-embedded-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const log = createLogger({ level: 'silent', instance: 'test' });

test('restarts a killed server, then gives up after maxRestarts deaths in the window', async () => {
  let gaveUp: Error | undefined;
  const port = await freePort();
  const nats = await startEmbeddedNats({
    settings: {
      binary: process.env['NATS_SERVER_BIN'] ?? 'nats-server',
      host: '127.0.0.1',
      port,
      dataDir: dir,
      syncAlways: false,
    },
    dataDir: dir,
    log,
    maxRestarts: 1,
    onGiveUp: (err) => {
      gaveUp = err;
    },
  });
  try {
    const first = nats.pid();
    process.kill(first, 'SIGKILL');
    const second = await waitUntil('a new server', () => nats.pid() !== first && nats.pid(), {
      timeoutMs: 15_000,
    });
    const nc = await connect({ servers: nats.url, token: nats.token, reconnect: false });
    await nc.close();
    assert.equal(gaveUp, undefined);

    process.kill(second, 'SIGKILL');
    const err = await waitUntil('the supervisor to give up', () => gaveUp, { timeoutMs: 15_000 });
    assert.match(err.message, /died 2 times within 60 s/);
    assert.equal(nats.pid(), second, 'not started again after giving up');
  } finally {
    await nats.stop();
  }
});

test('stop() during a restart leaves no server behind and frees the lock', async () => {
  const dir2 = mkdtempSync(join(tmpdir(), 'sluice-embedded-'));
  try {
    const nats = await startEmbeddedNats({
      settings: {
        binary: process.env['NATS_SERVER_BIN'] ?? 'nats-server',
        host: '127.0.0.1',
        port: await freePort(),
        dataDir: dir2,
        syncAlways: false,
      },
      dataDir: dir2,
      log,
      onGiveUp: () => assert.fail('no give-up expected'),
    });
    const first = nats.pid();
    process.kill(first, 'SIGKILL');
    // The supervisor noticed (a death it will restart after a backoff) once the process is gone.
    await waitUntil('the server to be gone', () => {
      try {
        process.kill(first, 0);
        return false;
      } catch {
        return true;
      }
    });
    await nats.stop();
    const last = nats.pid();
    assert.throws(() => process.kill(last, 0), 'no server left running');
    assert.equal(existsSync(join(dir2, 'sluice.lock')), false);
  } finally {
    rmSync(dir2, { recursive: true, force: true });
  }
});
