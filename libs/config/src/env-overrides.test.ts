import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './config-error.ts';
import { applyEnvOverrides, isIgnoredEnvName } from './env-overrides.ts';
import { loadConfig } from './loader.ts';

const base = 'domains: { primary: example.org }\ningress:\n  listen: [{ host: 127.0.0.1, port: 2525 }]\n';

describe('SLUICE_* environment overrides', () => {
  test('set a nested key and a list, parsed as YAML', () => {
    const c = loadConfig({
      text: base,
      env: {
        SLUICE_NATS__SERVERS: '["nats://a:4222","nats://b:4222"]',
        SLUICE_NATS__EMBEDDED__PORT: '14222',
        SLUICE_EGRESS__REQUIRETLS: 'true',
        SLUICE_LOG__LEVEL: 'debug',
      },
    });
    assert.deepEqual(c.nats.servers, ['nats://a:4222', 'nats://b:4222']);
    assert.equal(c.nats.embedded.port, 14222);
    assert.equal(c.egress.requireTls, true);
    assert.equal(c.log.level, 'debug');
    // Keys the environment did not touch keep what the file says.
    assert.deepEqual(c.ingress.listen, [{ host: '127.0.0.1', port: 2525 }]);
  });

  test('keys match ignoring case and underscores', () => {
    for (const name of [
      'SLUICE_INGRESS__MAX_MESSAGE_BYTES',
      'SLUICE_INGRESS__MAXMESSAGEBYTES',
      'SLUICE_ingress__maxMessageBytes',
    ]) {
      const c = loadConfig({ text: base, env: { [name]: '10485760' } });
      assert.equal(c.ingress.maxMessageBytes, 10485760, name);
    }
  });

  test('a list item by index, and a whole section as a flow mapping', () => {
    const c = loadConfig({
      text: base,
      env: {
        SLUICE_INGRESS__LISTEN__0__PORT: '2600',
        SLUICE_TRANSPORTS: '{lists.example.org: {host: 10.0.0.5, port: 24, lmtp: true}}',
        SLUICE_TRANSPORTS__LISTS_EXAMPLE_ORG__PORT: '2424',
      },
    });
    assert.deepEqual(c.ingress.listen, [{ host: '127.0.0.1', port: 2600 }]);
    // A map entry is found by the letters and digits of its key; the longer variable refines the shorter.
    assert.deepEqual(c.transports['lists.example.org'], { host: '10.0.0.5', port: 2424, lmtp: true });
  });

  test('a string key gets the text as written; a secret can be a reference', () => {
    const c = loadConfig({
      text: base,
      env: {
        SLUICE_NATS__PASSWORD: '0123',
        SLUICE_NATS__USER: 'true',
        SLUICE_LOG__HASHKEY: '{env: HK}',
        HK: 'k',
      },
    });
    assert.equal(c.nats.password, '0123');
    assert.equal(c.nats.user, 'true');
    assert.equal(c.log.hashKey, 'k');
  });

  test('an empty variable counts as unset; null unsets a key of the file', () => {
    const c = loadConfig({
      text: `${base}http: { listen: { port: 9180 } }\n`,
      env: { SLUICE_LOG__LEVEL: '' },
    });
    assert.equal(c.log.level, 'info');
    assert.equal(c.http.listen?.port, 9180);
    const off = loadConfig({
      text: `${base}http: { listen: { port: 9180 } }\n`,
      env: { SLUICE_HTTP__LISTEN: 'null' },
    });
    assert.equal(off.http.listen, undefined);
  });

  test('unknown names and wrong values are problems that name the variable', () => {
    assert.throws(
      () =>
        loadConfig({
          text: base,
          env: {
            SLUICE_INGRES__MAXCLIENTS: '5',
            SLUICE_INGRESS__MAXCLIENT: '5',
            SLUICE_INGRESS__MAXRECIPIENTS: 'many',
            SLUICE_HOSTNAME__X: 'y',
            SLUICE_INGRESS__LISTEN__FIRST__PORT: '1',
          },
        }),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        const lines = err.message.split('\n').slice(1);
        assert.deepEqual(lines.sort(), [
          'SLUICE_HOSTNAME__X: hostname has no keys below it — set hostname itself',
          'SLUICE_INGRESS__LISTEN__FIRST__PORT: ingress.listen is a list — use a number to pick an item, or set the whole list',
          'SLUICE_INGRESS__MAXCLIENT: ingress has no key "maxclient" — did you mean `maxClients`?',
          'SLUICE_INGRES__MAXCLIENTS: there is no config key "ingres" — did you mean `ingress`?',
          'ingress.maxRecipients: expected an integer >= 1, got "many" (SLUICE_INGRESS__MAXRECIPIENTS)',
        ]);
        return true;
      },
    );
  });

  test('SLUICE_CONFIG and Kubernetes service-link variables are not config', () => {
    for (const name of [
      'SLUICE_CONFIG',
      'SLUICE_PORT',
      'SLUICE_SERVICE_HOST',
      'SLUICE_NATS_SERVICE_PORT',
      'SLUICE_INGRESS_PORT_25_TCP_ADDR',
      'SLUICE_INGRESS_SERVICE_PORT_SMTP',
    ]) {
      assert.ok(isIgnoredEnvName(name), name);
    }
    assert.ok(!isIgnoredEnvName('SLUICE_NATS__EMBEDDED__PORT'));
    assert.ok(!isIgnoredEnvName('SLUICE_HOSTNAME'));
    const c = loadConfig({
      text: base,
      env: { SLUICE_PORT: 'tcp://10.0.0.1:25', SLUICE_CONFIG: '/etc/sluice.yaml' },
    });
    assert.equal(c.hostname, 'localhost');
  });

  test('the input object is not modified', () => {
    const input = { log: { level: 'info' } };
    const out = applyEnvOverrides(input, { SLUICE_LOG__LEVEL: 'warn' });
    assert.deepEqual(input, { log: { level: 'info' } });
    assert.deepEqual(out.value, { log: { level: 'warn' } });
    assert.equal(out.origins.get('["log","level"]'), 'SLUICE_LOG__LEVEL');
  });
});
