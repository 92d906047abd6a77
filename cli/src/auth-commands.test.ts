/**
 * `sluice auth refresh|bans|unban|check` through their real path: a real
 * nats-server and slapd, a running authenticator (a submission replica,
 * libs/credentials) that fails logins into real bans, and the command
 * reading and changing the same buckets with the same config. Proves: check
 * says the uid, the hash format and the snapshot age and never the hash;
 * bans lists the bans the replica imposed (users by uid, the network you
 * name by itself, others by hash); unban lifts them and the replica lets
 * the user in at once; refresh is held back by the deletion guard and
 * --force applies it (the replica drops the removed users); usage errors
 * exit 2 and an unreachable NATS 69; the installed `sluice auth` exits.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type AuthBuckets, Bus, defaultBusConfig } from '@sluice/bus';
import { type Authenticator, credentialOptionsOf, hashName, startAuthenticator } from '@sluice/credentials';
import { createLogger } from '@sluice/log';
import { loadProcessConfig } from '@sluice/runtime';
import { createMetrics } from '@sluice/telemetry';
import {
  freePort,
  type NatsTestServer,
  type SlapdServer,
  sluiceBin,
  startNats,
  startSlapd,
  waitUntil,
} from '@sluice/test-harness';
import { runAuthCommand } from './auth-command.ts';

/** {SSHA}: base64(sha1(password + salt) + salt), as slappasswd makes it. */
function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

const USERS = ['alice', 'bob', 'carol', 'dave', 'erin'];
const dir = mkdtempSync(join(tmpdir(), 'sluice-auth-cli-'));
const configFile = join(dir, 'sluice.yaml');
let nats: NatsTestServer;
let slapd: SlapdServer;
let bus: Bus;
let kv: AuthBuckets;
let replica: Authenticator;
const stored = new Map<string, string>();

async function sluiceAuth(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runAuthCommand([...args, '--config', configFile], {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const login = (username: string, clientIp: string, password = `${username}-pw`) =>
  replica.authenticate({ username, password, clientIp });

before(async () => {
  for (const u of USERS) stored.set(u, ssha(`${u}-pw`));
  nats = await startNats();
  slapd = await startSlapd(
    USERS.map((uid) => ({
      uid,
      mailPassword: [stored.get(uid)!],
      ...(uid === 'alice' ? { mail: ['Alice.Liddell@sluice.test'] } : {}),
    })),
  );
  const config = {
    domains: { primary: 'sluice.test' },
    nats: { servers: [nats.url] },
    routing: {
      ldap: { urls: [slapd.url], baseDn: slapd.baseDn, filter: '(objectClass=account)', timeout: 2 },
    },
    submission: {
      tls: { selfSigned: true, generatedDir: join(dir, 'tls') },
      auth: {
        throttle: { maxFailuresPerIp: 5, maxFailuresPerUserNetwork: 3, maxFailuresPerUser: 50, ban: 60 },
      },
    },
  };
  writeFileSync(configFile, JSON.stringify(config)); // JSON is YAML
  bus = await Bus.connect(defaultBusConfig({ servers: [nats.url], name: 'auth-cli-test' }));
  await bus.ensureTopology();
  kv = await bus.authBuckets();
  const log = createLogger({ level: 'silent', instance: 'auth-cli-test' });
  replica = await startAuthenticator(
    { kv, log, registry: createMetrics().registry },
    credentialOptionsOf(loadProcessConfig(configFile).config),
  );
});

after(async () => {
  await replica?.close();
  await bus?.close();
  await slapd?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('sluice auth check', () => {
  test('a user in the snapshot: uid, logins, hash format, snapshot age; never the hash', async () => {
    const r = await sluiceAuth('check', 'Alice.Liddell@sluice.test');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /in the credential snapshot as alice/);
    assert.match(r.out, /logins: +alice, alice@sluice\.test, alice\.liddell@sluice\.test/);
    assert.match(r.out, /hashes: +SSHA$/m);
    assert.match(
      r.out,
      /snapshot: version \d+, 5 users, from ldap:\/\/127\.0\.0\.1:\d+, read \S+ \(\d+ s ago\)/,
    );
    assert.match(r.out, /bans: +none/);
    const j = await sluiceAuth('check', 'alice', '--json');
    const parsed = JSON.parse(j.out);
    assert.equal(parsed.inSnapshot, true);
    assert.deepEqual(parsed.user.hashFormats, ['SSHA']);
    assert.ok(parsed.snapshot.ageSeconds >= 0);
    for (const text of [r.out, j.out]) {
      assert.ok(!text.includes(stored.get('alice')!.slice(6, 20)), 'the hash is never shown');
      assert.ok(!text.includes('alice-pw'));
    }
  });

  test('an unknown login: exit 1, said plainly', async () => {
    const r = await sluiceAuth('check', 'nobody@sluice.test');
    assert.equal(r.code, 1);
    assert.match(r.out, /nobody@sluice\.test: not in the credential snapshot/);
  });
});

describe('sluice auth bans / unban (bans imposed by a running replica)', () => {
  const bobNet = '192.0.2.10';
  const sprayNet = '2001:db8:7:7::1';

  test('bans lists what the replica banned: users by uid, networks by hash unless named', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await login('bob', bobNet, `guess${i}`)).kind, 'refused');
    for (let i = 0; i < 5; i++) await login(`victim${i}`, sprayNet, 'guess');
    assert.equal((await login('bob', bobNet)).kind, 'banned');
    assert.equal((await login('carol', sprayNet)).kind, 'banned');

    const all = await sluiceAuth('bans');
    assert.equal(all.code, 0, all.err);
    assert.match(all.out, /^2 bans in force \(\d+ records\)/);
    assert.match(
      all.out,
      new RegExp(
        `user@network +bob from net#${hashName(bobNet)}, banned until \\S+ \\(\\d+ s left\\), 0 failures`,
      ),
    );
    assert.match(all.out, new RegExp(`network +net#${hashName('2001:db8:7:7::/64')}, banned until`));
    assert.ok(!all.out.includes('victim'), 'unknown logins stay hashes');

    // Named: every record of that network, its address shown.
    const net = await sluiceAuth('bans', bobNet);
    assert.match(net.out, /^1 ban in force for network 192\.0\.2\.10 \(2 records\)/);
    assert.match(net.out, /network +192\.0\.2\.10, not banned, 3 failures/);
    assert.match(net.out, /user@network +bob from 192\.0\.2\.10, banned until/);
    // A user: its records from every network, and the brake counter.
    const bob = await sluiceAuth('bans', 'bob', '--json');
    const rows = JSON.parse(bob.out) as Array<{
      scope: string;
      user: string;
      banned: boolean;
      record: { n: number };
    }>;
    assert.deepEqual(rows.map((r) => [r.scope, r.user, r.banned]).sort(), [
      ['user', 'bob', false],
      ['user-network', 'bob', true],
    ]);
    assert.equal(rows.find((r) => r.scope === 'user')!.record.n, 3);
    // check shows the user's ban too.
    assert.match((await sluiceAuth('check', 'bob')).out, /bans:\s+user@network +bob from net#/);
  });

  test('unban a user, then a network: the replica lets them in at once; nothing left to lift: exit 1', async () => {
    const u = await sluiceAuth('unban', 'bob');
    assert.equal(u.code, 0, u.err);
    assert.match(u.out, /^lifted 1 ban on user bob:\n {2}user@network +bob from net#/);
    assert.deepEqual(await login('bob', bobNet), { kind: 'ok', user: 'bob' });
    const again = await sluiceAuth('unban', 'bob');
    assert.equal(again.code, 1);
    assert.match(again.out, /^no ban on user bob/);

    const n = await sluiceAuth('unban', '2001:db8:7:7::99'); // same /64
    assert.equal(n.code, 0, n.err);
    assert.match(n.out, /^lifted 1 ban on network 2001:db8:7:7::\/64/);
    assert.deepEqual(await login('carol', sprayNet), { kind: 'ok', user: 'carol' });
    assert.match((await sluiceAuth('bans')).out, /^0 bans in force/);
  });
});

describe('sluice auth refresh', () => {
  test('unchanged; a read dropping 2 of 5 users is held back; --force applies it and the replica follows', async () => {
    const same = await sluiceAuth('refresh');
    assert.equal(same.code, 0, same.err);
    assert.match(same.out, /^auth refresh: unchanged/);

    await slapd.remove(['dave', 'erin']);
    const held = await sluiceAuth('refresh');
    assert.equal(held.code, 1);
    assert.match(
      held.out,
      /^auth refresh: HELD BACK\n {2}credential refresh held back: it would remove 40 % of 5 users/,
    );
    assert.equal((await sluiceAuth('check', 'dave')).code, 0, 'the held refresh changed nothing');

    const forced = await sluiceAuth('refresh', '--force');
    assert.equal(forced.code, 0, forced.err);
    assert.match(forced.out, /^auth refresh: applied \(--force\)\n.*\n {2}snapshot version \d+, 3 users/);
    assert.equal((await sluiceAuth('check', 'dave')).code, 1);
    await waitUntil(
      'the replica drops dave',
      async () => (await login('dave', '192.0.2.50')).kind === 'refused',
    );
    assert.deepEqual(await login('carol', '192.0.2.50'), { kind: 'ok', user: 'carol' });
  });
});

describe('sluice auth usage and failures', () => {
  test('usage errors exit 2, help exits 0, an unreachable NATS exits 69', async () => {
    assert.equal(await runAuthCommand([], { out: () => {}, err: () => {} }), 2);
    assert.equal((await sluiceAuth('unban')).code, 2);
    assert.equal((await sluiceAuth('bans', 'bob', '--force')).code, 2);
    assert.equal((await sluiceAuth('sideways')).code, 2);
    const help: string[] = [];
    assert.equal(await runAuthCommand(['check', '--help'], { out: (l) => help.push(l), err: () => {} }), 0);
    assert.match(help.join('\n'), /never the hash/);
    const deadConfig = join(dir, 'dead.yaml');
    writeFileSync(
      deadConfig,
      JSON.stringify({
        domains: { primary: 'sluice.test' },
        nats: { servers: [`nats://127.0.0.1:${await freePort()}`] },
        routing: { ldap: { urls: [slapd.url], baseDn: slapd.baseDn } },
        submission: { tls: { selfSigned: true, generatedDir: join(dir, 'tls') } },
      }),
    );
    const err: string[] = [];
    assert.equal(
      await runAuthCommand(['bans', '--config', deadConfig], { out: () => {}, err: (l) => err.push(l) }),
      69,
    );
    assert.match(err.join('\n'), /cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+/);
  });

  test('the installed command: `sluice auth check` answers and exits', () => {
    const r = spawnSync(process.execPath, [sluiceBin, 'auth', 'check', 'carol', '--config', configFile], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /carol: in the credential snapshot as carol/);
    const h = spawnSync(process.execPath, [sluiceBin, '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.match(h.stdout, /sluice auth bans \[IP\|LOGIN\]/);
  });
});
