/** The e2e config file loads through the real loader, and a repeated top-level key is refused. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '@sluice/config';
import { sluiceConfigYaml } from './sluice-config.ts';

test('the written YAML loads as the config the end-to-end tests expect', () => {
  const config = loadConfig({
    text: sluiceConfigYaml({
      natsUrl: 'nats://127.0.0.1:4999',
      smtpPort: 2525,
      sinkPort: 2626,
      aliases: { 'team@example.org': ['alice@example.org'] },
      extraYaml: 'log: { level: info }',
    }),
    env: {},
  });
  assert.equal(config.hostname, 'mx.example.org');
  assert.deepEqual(config.routing.aliases, { 'team@example.org': ['alice@example.org'] });
  assert.deepEqual(config.routing.forwards, { 'alice@example.org': ['alice@example.net'] });
  assert.equal(config.transports['example.net']?.port, 2626);
  assert.deepEqual(config.nats.servers, ['nats://127.0.0.1:4999']);
  assert.equal(config.ingress.listen[0]?.port, 2525);
  assert.deepEqual(config.dns.servers, ['127.0.0.1:9']);
  assert.equal(config.log.level, 'info');
});

test('extraYaml may not repeat a key the helper writes', () => {
  assert.throws(
    () =>
      sluiceConfigYaml({ natsUrl: 'nats://x', smtpPort: 1, sinkPort: 2, extraYaml: 'dns: { timeout: 3 }\n' }),
    /extraYaml repeats the top-level key dns/,
  );
});
