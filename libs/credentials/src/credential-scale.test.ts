/**
 * A directory of a few thousand users (real slapd, real NATS): the first
 * sync writes one key per user, every user can log in by uid and address,
 * an unchanged re-read writes nothing, and removing a few users deletes
 * exactly their keys — all within a bound that catches one-round-trip-per-user
 * regressions on a loaded machine.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { type AuthBuckets, Bus, defaultBusConfig } from '@sluice/bus';
import { parseConfig } from '@sluice/config';
import { createLogger } from '@sluice/log';
import { createMetrics } from '@sluice/telemetry';
import { type NatsTestServer, type SlapdServer, startNats, startSlapd } from '@sluice/test-harness';
import { startAuthenticator } from './authenticator.ts';
import { USER_KEY_PREFIX } from './credential-records.ts';

const USERS = 3000;
let nats: NatsTestServer;
let slapd: SlapdServer;
let bus: Bus;
let kv: AuthBuckets;

const ssha = (pw: string) => {
  const salt = randomBytes(8);
  return `{SSHA}${Buffer.concat([createHash('sha1').update(pw).update(salt).digest(), salt]).toString('base64')}`;
};

before(async () => {
  slapd = await startSlapd(
    Array.from({ length: USERS }, (_, i) => ({
      uid: `user${i}`,
      mailPassword: [ssha(`pw-${i}`)],
      mail: [`first.last${i}@sluice.test`],
    })),
  );
  nats = await startNats();
  bus = await Bus.connect(defaultBusConfig({ servers: [nats.url], name: 'credentials-scale' }));
  await bus.ensureTopology();
  kv = await bus.authBuckets();
});

after(async () => {
  await bus?.close();
  await slapd?.close();
  await nats?.stop();
});

async function userKeys(): Promise<number> {
  let n = 0;
  for await (const k of await kv.credentials.keys()) if (k.startsWith(USER_KEY_PREFIX)) n++;
  return n;
}

test(`${USERS} users: sync, log in, unchanged re-read, a few removed`, async () => {
  const ldap = parseConfig(
    {
      domains: { primary: 'sluice.test' },
      routing: { ldap: { urls: [slapd.url], baseDn: slapd.baseDn, filter: '(objectClass=account)' } },
    },
    'credentials-scale',
  ).routing.ldap!;
  const t0 = performance.now();
  const a = await startAuthenticator(
    {
      kv,
      log: createLogger({ level: 'silent', instance: 'scale' }),
      registry: createMetrics().registry,
    },
    {
      ldap,
      userAttribute: 'uid',
      passwordAttribute: 'mailPassword',
      refreshIntervalSeconds: 3600,
      throttle: {
        maxFailuresPerIp: 20,
        maxFailuresPerUserNetwork: 10,
        maxFailuresPerUser: 50,
        windowSeconds: 900,
        banSeconds: 300,
        maxBanSeconds: 3600,
      },
    },
  );
  const firstSyncMs = performance.now() - t0;
  try {
    assert.equal(await userKeys(), USERS);
    assert.ok(firstSyncMs < 60_000, `first sync took ${Math.round(firstSyncMs)} ms`);
    for (const i of [0, 1234, USERS - 1]) {
      assert.deepEqual(
        await a.authenticate({ username: `user${i}`, password: `pw-${i}`, clientIp: '192.0.2.1' }),
        {
          kind: 'ok',
          user: `user${i}`,
        },
      );
      assert.deepEqual(
        await a.authenticate({
          username: `First.Last${i}@sluice.test`,
          password: `pw-${i}`,
          clientIp: '192.0.2.1',
        }),
        { kind: 'ok', user: `user${i}` },
      );
    }
    const lastSeq = async () => (await kv.credentials.status()).streamInfo.state.last_seq;
    const before = await lastSeq();
    assert.equal(await a.refresh(), 'unchanged');
    // Only the meta record was written again: one message.
    assert.equal(await lastSeq(), before + 1);

    await slapd.remove(['user5', 'user6', 'user7']);
    assert.equal(await a.refresh(), 'applied');
    assert.equal(await userKeys(), USERS - 3);
    assert.deepEqual(await a.authenticate({ username: 'user6', password: 'pw-6', clientIp: '192.0.2.1' }), {
      kind: 'refused',
    });
  } finally {
    await a.close();
  }
});
