/**
 * The authenticator against a real slapd holding users with every hash
 * format (made by openssl passwd, bcryptjs, slappasswd, node:crypto) and a
 * real nats-server: each format verifies right and refuses wrong; the KV
 * snapshot holds hashes and login names only; LDAP stopped, authentication
 * goes on (also for a replica started during the outage); a removed user is
 * gone after the next refresh; a refresh that would drop most users is held
 * back; no LDAP and no snapshot answers unavailable; empty passwords and a
 * foreign authzid are refused; unknown users get the same answer as wrong
 * passwords; failures ban the client network and the user for every replica
 * (the second authenticator on the same NATS), bans escalate, concurrent
 * failures on two replicas are all counted, and a success does not clear
 * the client's counter.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type AuthBuckets, Bus, defaultBusConfig } from '@sluice/bus';
import { parseConfig } from '@sluice/config';
import { createLogger } from '@sluice/log';
import { buckets } from '@sluice/proto';
import { createMetrics } from '@sluice/telemetry';
import {
  freePort,
  type LdapTestEntry,
  type NatsTestServer,
  type SlapdServer,
  startNats,
  startSlapd,
  waitUntil,
} from '@sluice/test-harness';
import { startAuthenticator, THROTTLE_TIMEOUT_MS } from './authenticator.ts';
import { decodeUser } from './credential-records.ts';
import { FIXTURE_FORMATS, type FixtureFormat, makeHash } from './hash-fixtures.ts';
import { attemptKeys, hashName } from './throttle-records.ts';
import type { Authenticator, CredentialOptions, LdapConnection, ThrottleOptions } from './types.ts';

const PASSWORD = 'Tr0ub4dor&3 ünïcode';
const formatUid = (f: FixtureFormat) => `u-${f.toLowerCase()}`;

let nats: NatsTestServer;
let slapd: SlapdServer;
let bus: Bus;
let kv: AuthBuckets;
const logLines: string[] = [];
const log = createLogger({
  level: 'debug',
  instance: 'credentials-test',
  destination: { write: (s: string) => logLines.push(s) },
});
const registry = createMetrics().registry;
const started: Authenticator[] = [];

function ldapConfig(url: string): LdapConnection {
  return parseConfig(
    {
      domains: { primary: 'sluice.test' },
      routing: {
        ldap: {
          urls: [url],
          baseDn: slapd.baseDn,
          filter: '(objectClass=account)',
          timeout: 2,
          maxDeleteShare: 0.5,
        },
      },
    },
    'credentials-test',
  ).routing.ldap!;
}

const LAX: ThrottleOptions = {
  maxFailuresPerIp: 1000,
  maxFailuresPerUserNetwork: 1000,
  maxFailuresPerUser: 1000,
  windowSeconds: 600,
  banSeconds: 60,
  maxBanSeconds: 3600,
};

function options(over: Partial<CredentialOptions> = {}, url = slapd.url): CredentialOptions {
  return {
    ldap: ldapConfig(url),
    userAttribute: 'uid',
    passwordAttribute: 'mailPassword',
    loginDomains: ['sluice.test'],
    refreshIntervalSeconds: 3600,
    throttle: LAX,
    ...over,
  };
}

async function authenticator(
  over: Partial<CredentialOptions> = {},
  deps: { kv?: AuthBuckets; url?: string; now?: () => number } = {},
): Promise<Authenticator> {
  const a = await startAuthenticator(
    { kv: deps.kv ?? kv, log, registry, now: deps.now },
    options(over, deps.url),
  );
  started.push(a);
  // Let the refresh a start runs in the background finish, so each test's own refreshes are its own.
  await a.refresh();
  return a;
}

async function connect(url: string): Promise<{ bus: Bus; kv: AuthBuckets }> {
  const b = await Bus.connect(defaultBusConfig({ servers: [url], name: 'credentials-test' }));
  await b.ensureTopology();
  return { bus: b, kv: await b.authBuckets() };
}

const entries: LdapTestEntry[] = [];

before(async () => {
  for (const f of FIXTURE_FORMATS) {
    entries.push({ uid: formatUid(f), mailPassword: [await makeHash(f, PASSWORD)] });
  }
  entries.push(
    {
      uid: 'alice',
      mailPassword: [await makeHash('CRYPT-6', 'alice-pw')],
      mail: ['Alice.Liddell@sluice.test'],
    },
    { uid: 'bob', mailPassword: [await makeHash('SSHA', 'bob-pw')] },
    { uid: 'carol', mailPassword: [await makeHash('CRYPT-2y', 'carol-pw')] },
    { uid: 'emptypw', mailPassword: [await makeHash('CRYPT-6', '')] },
    { uid: 'legacy', mailPassword: ['{CRYPT}abJnggxhB/yWI'] }, // DES crypt: not verified
    { uid: 'cleartext', mailPassword: ['{PLAIN}cleartext-pw'] },
    { uid: 'nopassword' }, // no mailPassword: cannot log in
    ...Array.from({ length: 6 }, (_, i) => ({ uid: `pad${i}`, mailPassword: [`{SHA}pad${i}`] })),
  );
  nats = await startNats();
  slapd = await startSlapd(entries);
  ({ bus, kv } = await connect(nats.url));
});

after(async () => {
  for (const a of started) await a.close();
  await bus?.close();
  await slapd?.close();
  await nats?.stop();
});

const ip = (n: number) => `192.0.2.${n}`;

describe('authenticator (real slapd, real NATS)', () => {
  test('every hash format: right password ok, wrong refused; logins by uid, address and uid@domain', async () => {
    const a = await authenticator();
    for (const f of FIXTURE_FORMATS) {
      const username = formatUid(f);
      assert.deepEqual(
        await a.authenticate({ username, password: PASSWORD, clientIp: ip(1) }),
        { kind: 'ok', user: username },
        f,
      );
      assert.deepEqual(await a.authenticate({ username, password: `${PASSWORD}!`, clientIp: ip(1) }), {
        kind: 'refused',
      });
    }
    for (const username of ['alice', 'ALICE', 'alice.liddell@sluice.test', 'alice@sluice.test']) {
      assert.deepEqual(await a.authenticate({ username, password: 'alice-pw', clientIp: ip(1) }), {
        kind: 'ok',
        user: 'alice',
      });
    }
    assert.deepEqual(await a.authenticate({ username: 'nopassword', password: 'x', clientIp: ip(1) }), {
      kind: 'refused',
    });
    // Cleartext in the directory is refused unless the option allows it.
    assert.deepEqual(
      await a.authenticate({ username: 'cleartext', password: 'cleartext-pw', clientIp: ip(1) }),
      {
        kind: 'refused',
      },
    );
    const lax = await authenticator({ allowCleartext: true });
    assert.deepEqual(
      await lax.authenticate({ username: 'cleartext', password: 'cleartext-pw', clientIp: ip(1) }),
      { kind: 'ok', user: 'cleartext' },
    );
  });

  test('the snapshot holds hashes and login names only, one key per user', async () => {
    await authenticator();
    const keys: string[] = [];
    for await (const k of await kv.credentials.keys()) keys.push(k);
    const stored = new Map<string, string[]>();
    for (const k of keys) {
      const e = await kv.credentials.get(k);
      if (e?.operation !== 'PUT') continue;
      const text = new TextDecoder().decode(e.value);
      for (const pw of [PASSWORD, 'alice-pw', 'bob-pw', 'carol-pw'])
        assert.ok(!text.includes(pw), `${k} holds a password`);
      const u = decodeUser(e.value);
      if (u) stored.set(u.uid, u.hashes);
    }
    for (const e of entries.filter((x) => x.mailPassword))
      assert.deepEqual(stored.get(e.uid), e.mailPassword, e.uid);
    assert.equal(stored.has('nopassword'), false);
  });

  test('empty password refused before any check; a foreign authzid refused; own authzid accepted', async () => {
    const a = await authenticator();
    assert.deepEqual(await a.authenticate({ username: 'emptypw', password: '', clientIp: ip(2) }), {
      kind: 'refused',
    });
    assert.deepEqual(await a.authenticate({ username: 'alice', password: '', clientIp: ip(2) }), {
      kind: 'refused',
    });
    assert.deepEqual(
      await a.authenticate({ username: 'alice', password: 'alice-pw', authzid: 'bob', clientIp: ip(2) }),
      { kind: 'refused' },
    );
    assert.deepEqual(
      await a.authenticate({
        username: 'alice',
        password: 'alice-pw',
        authzid: 'alice.liddell@sluice.test',
        clientIp: ip(2),
      }),
      { kind: 'ok', user: 'alice' },
    );
    assert.deepEqual(
      await a.authenticate({ username: 'alice', password: 'alice-pw', authzid: '', clientIp: ip(2) }),
      { kind: 'ok', user: 'alice' },
    );
  });

  test('unknown user and wrong password: the same answer; an unknown scheme warns once, without the hash', async () => {
    const a = await authenticator();
    const unknown = await a.authenticate({ username: 'nosuchuser', password: 'guess', clientIp: ip(3) });
    const wrong = await a.authenticate({ username: 'carol', password: 'guess', clientIp: ip(3) });
    assert.deepEqual(unknown, { kind: 'refused' });
    assert.deepEqual(wrong, unknown);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await a.authenticate({ username: 'legacy', password: 'guess', clientIp: ip(3) }), {
        kind: 'refused',
      });
    }
    const warnings = logLines.filter((l) => l.includes('"user":"legacy"') && l.includes('does not verify'));
    assert.equal(warnings.length, 1);
    const all = logLines.join('\n');
    assert.ok(!all.includes('abJnggxhB'), 'no hash in the logs');
    for (const pw of [PASSWORD, 'alice-pw', 'guess']) assert.ok(!all.includes(pw), 'no password in the logs');
  });

  test('LDAP stopped: authentication goes on from the snapshot, also for a replica started during the outage', async () => {
    const a = await authenticator();
    await slapd.stop();
    try {
      assert.equal(await a.refresh(), 'failed');
      assert.deepEqual(await a.authenticate({ username: 'carol', password: 'carol-pw', clientIp: ip(4) }), {
        kind: 'ok',
        user: 'carol',
      });
      const late = await authenticator();
      assert.deepEqual(await late.authenticate({ username: 'bob', password: 'bob-pw', clientIp: ip(4) }), {
        kind: 'ok',
        user: 'bob',
      });
      assert.deepEqual(await late.authenticate({ username: 'bob', password: 'nope', clientIp: ip(4) }), {
        kind: 'refused',
      });
    } finally {
      await slapd.start();
    }
    // Back: the next read reaches LDAP again (and the next test starts with slapd answering).
    await waitUntil('LDAP read again after the restart', async () => (await a.refresh()) !== 'failed');
  });

  test('a user removed from LDAP is gone after the next refresh, on every replica', async () => {
    const a = await authenticator();
    const b = await authenticator();
    await slapd.add([{ uid: 'dave', mailPassword: [await makeHash('SSHA512', 'dave-pw')] }]);
    assert.equal(await a.refresh(), 'applied');
    await waitUntil(
      'dave known to the second replica',
      async () =>
        (await b.authenticate({ username: 'dave', password: 'dave-pw', clientIp: ip(5) })).kind === 'ok',
    );
    await slapd.remove(['dave']);
    assert.equal(await a.refresh(), 'applied');
    await waitUntil(
      'dave gone on the second replica',
      async () =>
        (await b.authenticate({ username: 'dave', password: 'dave-pw', clientIp: ip(5) })).kind === 'refused',
    );
  });

  test('a refresh that would drop most users (LDAP answering nothing) is held back', async () => {
    const wrongFilter = await authenticator({ userFilter: '(uid=nobody-matches-this)' });
    assert.equal(await wrongFilter.refresh(), 'held');
    assert.deepEqual(
      await wrongFilter.authenticate({ username: 'bob', password: 'bob-pw', clientIp: ip(6) }),
      {
        kind: 'ok',
        user: 'bob',
      },
    );
  });

  test('neither LDAP nor a snapshot: unavailable, never refused', async () => {
    const other = await startNats();
    const conn = await connect(other.url);
    try {
      const deadLdap = `ldap://127.0.0.1:${await freePort()}`;
      const a = await authenticator({}, { kv: conn.kv, url: deadLdap });
      assert.deepEqual(await a.authenticate({ username: 'bob', password: 'bob-pw', clientIp: ip(7) }), {
        kind: 'unavailable',
      });
      assert.deepEqual(await a.authenticate({ username: 'bob', password: 'wrong', clientIp: ip(7) }), {
        kind: 'unavailable',
      });
      await a.close();
    } finally {
      await conn.bus.close();
      await other.stop();
    }
  });
});

describe('NATS restarted', () => {
  test('while NATS is down: unavailable, not refused; after: logins, bans and snapshot changes flow again', async () => {
    const other = await startNats();
    const conn = await connect(other.url);
    try {
      const a = await authenticator({}, { kv: conn.kv });
      const b = await authenticator({}, { kv: conn.kv });
      assert.equal(
        (await b.authenticate({ username: 'bob', password: 'bob-pw', clientIp: ip(40) })).kind,
        'ok',
      );
      await other.nodes[0]!.kill();
      const t0 = Date.now();
      assert.deepEqual(await b.authenticate({ username: 'bob', password: 'bob-pw', clientIp: ip(40) }), {
        kind: 'unavailable',
      });
      assert.ok(
        Date.now() - t0 < THROTTLE_TIMEOUT_MS + 2000,
        'answered without waiting out the NATS timeout',
      );
      await other.nodes[0]!.restart();
      await waitUntil(
        'logins after the restart',
        async () =>
          (await b.authenticate({ username: 'bob', password: 'bob-pw', clientIp: ip(40) })).kind === 'ok',
      );
      // The snapshot watch survived: a change written by one replica reaches the other.
      await slapd.add([{ uid: 'erin', mailPassword: [await makeHash('CRYPT-5', 'erin-pw')] }]);
      try {
        await waitUntil('a refresh after the restart', async () => (await a.refresh()) === 'applied');
        await waitUntil(
          'erin known to the other replica',
          async () =>
            (await b.authenticate({ username: 'erin', password: 'erin-pw', clientIp: ip(40) })).kind === 'ok',
        );
      } finally {
        await slapd.remove(['erin']);
      }
    } finally {
      await conn.bus.close();
      await other.stop();
    }
  });
});

describe('brute-force protection shared by replicas', () => {
  const STRICT: ThrottleOptions = {
    maxFailuresPerIp: 5,
    maxFailuresPerUserNetwork: 50,
    maxFailuresPerUser: 50,
    windowSeconds: 600,
    banSeconds: 60,
    maxBanSeconds: 200,
  };

  test('N failures ban the client network; the second replica sees the ban; other clients unaffected', async () => {
    const a = await authenticator({ throttle: STRICT });
    const b = await authenticator({ throttle: STRICT });
    const attacker = '2001:db8:1:2::66';
    for (let i = 0; i < STRICT.maxFailuresPerIp; i++) {
      assert.deepEqual(
        await a.authenticate({ username: `victim${i}`, password: 'guess', clientIp: attacker }),
        {
          kind: 'refused',
        },
      );
    }
    const seen = await b.authenticate({ username: 'bob', password: 'bob-pw', clientIp: attacker });
    assert.equal(seen.kind, 'banned');
    assert.ok(seen.kind === 'banned' && seen.retryAfterSeconds > 0 && seen.retryAfterSeconds <= 60);
    // Another address of the same /64 is the same client network.
    assert.equal(
      (await b.authenticate({ username: 'bob', password: 'bob-pw', clientIp: '2001:db8:1:2::99' })).kind,
      'banned',
    );
    assert.deepEqual(
      await b.authenticate({ username: 'bob', password: 'bob-pw', clientIp: '2001:db8:1:3::1' }),
      {
        kind: 'ok',
        user: 'bob',
      },
    );
  });

  test('bans escalate: each ban of a key doubles, up to maxBanSeconds', async () => {
    let clock = Date.now();
    const now = () => clock;
    const a = await authenticator({ throttle: STRICT }, { now });
    const b = await authenticator({ throttle: STRICT }, { now });
    const attacker = ip(66);
    const bans: number[] = [];
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < STRICT.maxFailuresPerIp; i++) {
        await (i % 2 ? a : b).authenticate({ username: 'carol', password: `guess${i}`, clientIp: attacker });
      }
      const r = await a.authenticate({ username: 'carol', password: 'carol-pw', clientIp: attacker });
      assert.equal(r.kind, 'banned', `round ${round}`);
      bans.push(r.kind === 'banned' ? r.retryAfterSeconds : 0);
      clock += bans.at(-1)! * 1000 + 1; // the ban is over
      assert.deepEqual(
        await b.authenticate({ username: 'carol', password: 'carol-pw', clientIp: attacker }),
        {
          kind: 'ok',
          user: 'carol',
        },
      );
    }
    assert.deepEqual(bans, [60, 120, 200, 200]);
  });

  test('failures for a user from one network ban that user from that network only (decision 0040)', async () => {
    const a = await authenticator({
      throttle: { ...STRICT, maxFailuresPerIp: 100, maxFailuresPerUserNetwork: 4 },
    });
    const b = await authenticator({
      throttle: { ...STRICT, maxFailuresPerIp: 100, maxFailuresPerUserNetwork: 4 },
    });
    const attacker = '2001:db8:66:1::7';
    for (let i = 0; i < 4; i++) {
      await a.authenticate({ username: 'alice.liddell@sluice.test', password: 'guess', clientIp: attacker });
    }
    // The attacker's network (any address of its /64), on either replica: alice is banned there.
    const there = await b.authenticate({
      username: 'alice',
      password: 'alice-pw',
      clientIp: '2001:db8:66:1::8',
    });
    assert.equal(there.kind, 'banned');
    assert.ok(there.kind === 'banned' && there.scope === 'user-network' && there.retryAfterSeconds === 60);
    // Alice from her own network, and another user from the attacker's network: not affected.
    assert.deepEqual(await b.authenticate({ username: 'alice', password: 'alice-pw', clientIp: ip(121) }), {
      kind: 'ok',
      user: 'alice',
    });
    assert.deepEqual(await a.authenticate({ username: 'bob', password: 'bob-pw', clientIp: attacker }), {
      kind: 'ok',
      user: 'bob',
    });
  });

  test('failures for a user from many networks brake it (454 throttled) except from its usual networks', async () => {
    // Two days ahead: the earlier tests' failures for this user are out of the window.
    let clock = Date.now() + 2 * 86_400_000;
    const now = () => clock;
    const throttle = {
      ...STRICT,
      maxFailuresPerIp: 100,
      maxFailuresPerUserNetwork: 100,
      maxFailuresPerUser: 6,
    };
    const a = await authenticator({ throttle }, { now });
    const b = await authenticator({ throttle }, { now });
    const braked = formatUid('SSHA'); // a user no other test fails for
    const home = ip(130);
    assert.equal((await a.authenticate({ username: braked, password: PASSWORD, clientIp: home })).kind, 'ok');
    // A distributed attack: each network fails once, far below any per-network limit.
    for (let i = 0; i < 6; i++) {
      const r = await (i % 2 ? a : b).authenticate({
        username: braked,
        password: `guess${i}`,
        clientIp: `198.51.100.${i + 1}`,
      });
      assert.deepEqual(r, { kind: 'refused' });
    }
    // From a network carol never used: the brake, for the rest of the window; no password checked.
    const away = await b.authenticate({ username: braked, password: PASSWORD, clientIp: ip(131) });
    assert.deepEqual(away, { kind: 'throttled', retryAfterSeconds: STRICT.windowSeconds });
    // From her usual network (a success there within the last day): she logs in, on either replica.
    assert.deepEqual(await b.authenticate({ username: braked, password: PASSWORD, clientIp: home }), {
      kind: 'ok',
      user: braked,
    });
    // Other users are not braked.
    assert.equal(
      (await a.authenticate({ username: 'bob', password: 'bob-pw', clientIp: ip(131) })).kind,
      'ok',
    );
    // The brake ends with the window and does not escalate.
    clock += STRICT.windowSeconds * 1000 + 1;
    assert.deepEqual(await a.authenticate({ username: braked, password: PASSWORD, clientIp: ip(131) }), {
      kind: 'ok',
      user: braked,
    });
  });

  test('ban start and end are logged once at warn, with the network and the user hash, never the password', async () => {
    let clock = Date.now();
    const now = () => clock;
    const throttle = { ...STRICT, maxFailuresPerIp: 100, maxFailuresPerUserNetwork: 3 };
    const a = await authenticator({ throttle }, { now });
    const b = await authenticator({ throttle }, { now });
    const client = ip(140);
    const from = logLines.length;
    for (let i = 0; i < 3; i++) {
      await (i % 2 ? a : b).authenticate({
        username: 'bob',
        password: `secret-guess-${i}`,
        clientIp: client,
      });
    }
    assert.equal(
      (await a.authenticate({ username: 'bob', password: 'bob-pw', clientIp: client })).kind,
      'banned',
    );
    clock += 61_000;
    // Both replicas see the ban over at once: one of them notes (and logs) it.
    const [ra, rb] = await Promise.all([
      a.authenticate({ username: 'bob', password: 'bob-pw', clientIp: client }),
      b.authenticate({ username: 'bob', password: 'bob-pw', clientIp: client }),
    ]);
    assert.equal(ra.kind, 'ok');
    assert.equal(rb.kind, 'ok');
    const lines = () =>
      logLines
        .slice(from)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => /ban/.test(String(l.msg)));
    await waitUntil('the end of the ban logged', () => lines().some((l) => /over/.test(String(l.msg))));
    const [start, ...rest] = lines();
    assert.equal(rest.length, 1, JSON.stringify(lines()));
    for (const l of [start!, rest[0]!]) {
      assert.equal(l.level, 'warn');
      assert.equal(l.network, client);
      assert.equal(l.userHash, hashName('bob'));
      assert.equal(l.scope, 'user-network');
    }
    assert.match(String(start!.msg), /user-network banned for 60 s/);
    assert.equal(start!.failures, 3);
    assert.match(String(rest[0]!.msg), /ban over/);
    assert.ok(!logLines.slice(from).join('\n').includes('secret-guess'));
  });

  test('a success does not clear the client counter: one good account buys no guesses at others', async () => {
    const a = await authenticator({ throttle: STRICT });
    const client = ip(77);
    for (let i = 0; i < STRICT.maxFailuresPerIp - 1; i++) {
      await a.authenticate({ username: `other${i}`, password: 'guess', clientIp: client });
    }
    assert.equal(
      (await a.authenticate({ username: 'bob', password: 'bob-pw', clientIp: client })).kind,
      'ok',
    );
    assert.deepEqual(await a.authenticate({ username: 'other9', password: 'guess', clientIp: client }), {
      kind: 'refused',
    });
    assert.equal(
      (await a.authenticate({ username: 'bob', password: 'bob-pw', clientIp: client })).kind,
      'banned',
    );
  });

  test('concurrent failures on two replicas are all counted (compare-and-set)', async () => {
    const limit = 12;
    const throttle = { ...STRICT, maxFailuresPerIp: limit };
    const a = await authenticator({ throttle });
    const b = await authenticator({ throttle });
    const client = ip(88);
    const attempts = Array.from({ length: limit - 1 }, (_, i) =>
      (i % 2 ? a : b).authenticate({ username: `spray${i}`, password: 'guess', clientIp: client }),
    );
    for (const r of await Promise.all(attempts)) assert.deepEqual(r, { kind: 'refused' });
    const rec = await kv.throttle.get(attemptKeys(client, 'spray0').ip);
    assert.equal(JSON.parse(new TextDecoder().decode(rec!.value)).n, limit - 1);
    assert.deepEqual(await a.authenticate({ username: 'spray-last', password: 'guess', clientIp: client }), {
      kind: 'refused',
    });
    assert.equal(
      (await b.authenticate({ username: 'bob', password: 'bob-pw', clientIp: client })).kind,
      'banned',
    );
  });

  test('the throttle bucket holds no login name or address as typed', async () => {
    const a = await authenticator({ throttle: STRICT });
    await a.authenticate({ username: 'hunter2-typed-as-user', password: 'guess', clientIp: ip(99) });
    const texts: string[] = [];
    for await (const k of await kv.throttle.keys()) {
      const e = await kv.throttle.get(k);
      texts.push(k, e ? new TextDecoder().decode(e.value) : '');
    }
    const all = texts.join('\n');
    assert.ok(texts.length > 0);
    for (const typed of ['hunter2', 'alice', 'victim', '192.0.2', '2001:db8'])
      assert.ok(!all.includes(typed), typed);
  });

  test('metrics count outcomes and bans', async () => {
    const text = await registry.metrics();
    for (const outcome of ['ok', 'refused', 'banned', 'throttled', 'unavailable']) {
      assert.match(text, new RegExp(`sluice_submission_auth_total\\{outcome="${outcome}"\\} [1-9]`));
    }
    assert.match(text, /sluice_submission_auth_bans_total\{scope="ip"\} [1-9]/);
    assert.match(text, /sluice_submission_auth_bans_total\{scope="user-network"\} [1-9]/);
    assert.match(text, /sluice_submission_auth_bans_total\{scope="user"\} [1-9]/);
    assert.ok(buckets.credentials && buckets.authThrottle);
  });
});
