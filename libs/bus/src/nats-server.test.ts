import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { renderNatsConfig, spawnNatsServer } from './nats-server.ts';

const BINARY = process.env['NATS_SERVER_BIN'] ?? '/usr/sbin/nats-server';

test('renderNatsConfig writes sync_interval only when asked, and cluster routes', () => {
  const base = { host: '127.0.0.1', port: -1, storeDir: '/data/js', portsDir: '/data/run' };
  assert.match(renderNatsConfig({ ...base, syncAlways: true }), /sync_interval: always/);
  const conf = renderNatsConfig({
    ...base,
    syncAlways: false,
    serverName: 'n1',
    cluster: { name: 'c', port: 6222, routes: ['nats-route://127.0.0.1:6223'] },
  });
  assert.doesNotMatch(conf, /sync_interval/);
  assert.match(conf, /server_name: "n1"/);
  assert.match(conf, /routes: \["nats-route:\/\/127.0.0.1:6223"\]/);
});

test('spawnNatsServer: random port, JetStream ready, sync support detected, stop ends the process', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-spawn-'));
  try {
    const srv = await spawnNatsServer({ binary: BINARY, port: 0, storeDir: dir });
    assert.ok(srv.clientPort > 0);
    const conf = await readFile(srv.configFile, 'utf8');
    // 2.9 refuses sync_interval; newer servers take it. Either way the flag tells the truth.
    assert.equal(/sync_interval: always/.test(conf), srv.syncAlways);
    const nc = await connect({ servers: srv.url });
    assert.equal(nc.info?.jetstream, true);
    const version = nc.info?.version ?? '';
    if (/^2\.9\./.test(version)) assert.equal(srv.syncAlways, false, 'nats-server 2.9 has no sync_interval');
    await nc.close();
    await srv.stop();
    assert.notEqual(await srv.exited, undefined);
    assert.throws(() => process.kill(srv.pid, 0), /ESRCH/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('spawnNatsServer reports why a server cannot start', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-spawn-'));
  try {
    await assert.rejects(
      spawnNatsServer({ binary: join(dir, 'no-such-nats-server'), storeDir: dir, syncAlways: false }),
      /cannot run|spawn failed|ENOENT/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
