import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { exampleConfig, exampleConfigPath } from './example.ts';

test('the example configuration loads and describes the tour setup', () => {
  assert.ok(existsSync(exampleConfigPath), exampleConfigPath);
  assert.match(exampleConfigPath, /config\/sluice\.example\.yaml$/);
  const c = exampleConfig({});
  assert.equal(c.hostname, 'mx.example.org');
  assert.equal(c.domains.primary, 'example.org');
  assert.deepEqual(c.domains.aliases, ['example.com']);
  assert.deepEqual(c.ingress.listen, [{ host: '127.0.0.1', port: 2525 }]);
  assert.deepEqual(c.http.listen, { host: '127.0.0.1', port: 9180 });
  assert.deepEqual(c.nats.servers, []);
  assert.equal(c.nats.embedded.port, 14222);
  assert.equal(c.nats.embedded.dataDir, '.sluice/nats');
  assert.deepEqual(c.transports['example.net'], { host: '127.0.0.1', port: 2526, lmtp: false });
  assert.deepEqual(c.routing.forwards['alice@example.org'], ['alice@example.net']);
  assert.ok(c.routing.aliases['postmaster@example.org'], 'postmaster (RFC 5321 §4.5.1)');
  // An alias to an alias, and a role alias with several members.
  assert.deepEqual(c.routing.aliases['abuse@example.org'], ['postmaster@example.org']);
  assert.ok(c.routing.aliases['info@example.org']!.length >= 2);
  // Every forward goes to example.net, which the transport sends to the local sink.
  for (const targets of Object.values(c.routing.forwards)) {
    for (const t of targets) assert.match(t, /@example\.net$/);
  }
});

test('the example takes SLUICE_* overrides', () => {
  const c = exampleConfig({ SLUICE_INGRESS__LISTEN__0__PORT: '2600' });
  assert.equal(c.ingress.listen[0]!.port, 2600);
});
