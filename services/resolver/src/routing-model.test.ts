/**
 * The parts of the routing model added with the LDAP source, as plain
 * functions: plus-addressing, reject entries, catch-alls next to the
 * directory, config rules over directory rules, the staleness gate, the
 * forward checks, the snapshot codec and deletion guard, the config file
 * watcher, and the figures for a 10,000-entry directory (reported, not
 * asserted: the machine is shared).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type ConfigInput, parseConfig, type SluiceConfig } from '@sluice/config';
import { waitUntil } from '@sluice/test-harness';
import { watchConfigFile } from './config-reload.ts';
import { expandRecipient } from './expand.ts';
import { checkForward } from './forward-check.ts';
import { decodeSnapshot, deletionShare, encodeSnapshot, entriesHash } from './ldap-snapshot.ts';
import { lookupAddress } from './lookup.ts';
import { routeFor } from './route.ts';
import { buildRoutingTable, type LdapRules } from './routing-table.ts';

const at = (ms: number) => ({ now: new Date(ms) });
const LDAP = {
  urls: ['ldap://127.0.0.1:9'],
  baseDn: 'ou=users,dc=example,dc=org',
  maxStaleness: 60,
  refreshInterval: 30,
};

function config(extra: Partial<ConfigInput> = {}): SluiceConfig {
  return parseConfig(
    { domains: { primary: 'example.org', aliases: ['example.com'] }, ...extra },
    'model-test',
  );
}

describe('plus-addressing', () => {
  const t = buildRoutingTable(
    config({
      routing: {
        forwards: { 'alice@example.org': ['alice@gmail.test'] },
        aliases: { 'alice+work@example.org': ['boss@example.net'] },
      },
      transports: { 'example.org': { host: '127.0.0.1', port: 24, lmtp: true } },
    }),
  );
  test('user+tag@ resolves as user@ when it has no rule of its own', () => {
    const exp = expandRecipient(t, 'alice+lists@example.org');
    assert.deepEqual(
      exp.targets.map((x) => x.address),
      ['alice@gmail.test'],
    );
    assert.match(exp.trail[0] ?? '', /plus-addressing for alice\+lists@example\.org/);
  });
  test('an explicit rule for user+tag@ wins', () => {
    assert.deepEqual(
      expandRecipient(t, 'alice+work@example.org').targets.map((x) => x.address),
      ['boss@example.net'],
    );
  });
  test('a mailbox keeps the tag', () => {
    assert.deepEqual(
      expandRecipient(t, 'carol+x@example.org').targets.map((x) => x.address),
      ['carol+x@example.org'],
    );
  });
  test('the separator is configurable, and can be turned off', () => {
    const dash = buildRoutingTable(
      config({ routing: { plusSeparator: '-', forwards: { 'alice@example.org': ['a@b.test'] } } }),
    );
    assert.deepEqual(
      expandRecipient(dash, 'alice-x@example.org').targets.map((x) => x.address),
      ['a@b.test'],
    );
    assert.equal(lookupAddress(dash, 'alice+x@example.org').result, 'unknown');
    const off = buildRoutingTable(
      config({ routing: { plusSeparator: '', forwards: { 'alice@example.org': ['a@b.test'] } } }),
    );
    assert.equal(lookupAddress(off, 'alice+x@example.org').result, 'unknown');
  });
});

describe('transports per address and per domain', () => {
  test("an address transport wins over its domain's and makes the address a mailbox", () => {
    const t = buildRoutingTable(
      config({
        transports: {
          'example.org': { host: '10.0.0.1', port: 25 },
          'Boss@Example.org': { host: '10.0.0.2', port: 24, lmtp: true },
        },
      }),
    );
    assert.deepEqual(routeFor(t, 'boss@example.org'), {
      kind: 'smtp',
      name: 'boss@example.org',
      host: '10.0.0.2',
      port: 24,
      lmtp: true,
    });
    assert.deepEqual(routeFor(t, 'other@example.org'), {
      kind: 'smtp',
      name: 'example.org',
      host: '10.0.0.1',
      port: 25,
      lmtp: false,
    });
    const r = lookupAddress(t, 'boss@example.org');
    assert.equal(r.result, 'ok');
    assert.match(r.trail.join('\n'), /transport for boss@example\.org \(10\.0\.0\.2:24, LMTP\)/);
  });
});

describe('transport client certificates (config)', () => {
  test('clientCert and clientKey go together', () => {
    assert.throws(
      () => config({ transports: { 'example.net': { host: 'h', clientCert: '/tls/c.pem' } } }),
      /transports\["example\.net"\]\.clientKey: missing/,
    );
    assert.throws(
      () => config({ relay: { host: 'h', clientKey: '/tls/k.pem' } }),
      /relay\.clientCert: missing/,
    );
    assert.doesNotThrow(() =>
      config({ transports: { 'example.net': { host: 'h', clientCert: '/c', clientKey: '/k' } } }),
    );
  });
});

describe('reject entries and catch-alls', () => {
  const t = buildRoutingTable(
    config({
      routing: {
        reject: { 'old-list@example.org': 'This list moved to lists.example.net' },
        aliases: { '@example.org': ['catchall@example.net'], 'old-list@example.org': ['x@example.net'] },
      },
    }),
  );
  test('a reject entry refuses with its text, before any alias, also with a tag and via an alias domain', () => {
    for (const a of ['old-list@example.org', 'old-list+x@example.org', 'old-list@example.com']) {
      const r = lookupAddress(t, a);
      assert.equal(r.result, 'unknown', a);
      assert.equal(r.rejectText, 'This list moved to lists.example.net');
      assert.deepEqual(r.decidedBy, [{ source: 'config routing.reject' }]);
    }
  });
  test('the catch-all takes the rest', () => {
    assert.deepEqual(lookupAddress(t, 'anyone@example.org').targets, ['catchall@example.net']);
  });
  test('a reject text must be printable ASCII (it goes into an SMTP reply)', () => {
    assert.throws(
      () => config({ routing: { reject: { 'a@example.org': 'bad\r\n250 ok' } } }),
      /routing\.reject/,
    );
  });
});

describe('LDAP rules in the table', () => {
  const ldap: LdapRules = {
    version: 7,
    fetchedAt: 1_000_000,
    entries: { alice: ['alice@gmail.test'], bob: [] },
  };
  const cfg = config({
    routing: {
      ldap: LDAP,
      forwards: { 'alice@example.org': ['alice@config.test'] },
      aliases: { '@example.org': ['ca@example.net'] },
    },
  });
  test('a config rule wins over the directory; the directory decides the rest, with its version and age', () => {
    const t = buildRoutingTable(cfg, ldap);
    assert.deepEqual(lookupAddress(t, 'alice@example.org', at(1_005_000)).targets, ['alice@config.test']);
    const noLdapRule = buildRoutingTable(config({ routing: { ldap: LDAP } }), ldap);
    const r = lookupAddress(noLdapRule, 'alice@example.org', at(1_005_000));
    assert.deepEqual(r.targets, ['alice@gmail.test']);
    assert.deepEqual(r.decidedBy, [{ source: 'ldap snapshot 7', snapshotVersion: 7, snapshotAgeSeconds: 5 }]);
  });
  test('no snapshot, or one past maxStaleness: tempfail, even where a catch-all would take it', () => {
    const none = buildRoutingTable(cfg);
    assert.equal(lookupAddress(none, 'zed@example.org').result, 'tempfail');
    const t = buildRoutingTable(cfg, ldap);
    assert.deepEqual(lookupAddress(t, 'zed@example.org', at(1_000_000 + 59_000)).targets, ['ca@example.net']);
    const stale = lookupAddress(t, 'zed@example.org', at(1_000_000 + 61_000));
    assert.equal(stale.result, 'tempfail');
    assert.equal(stale.reason, 'routing directory unavailable');
    // Config rules do not depend on the directory.
    assert.equal(lookupAddress(t, 'alice@example.org', at(1_000_000 + 61_000)).result, 'ok');
    // Other domains do not either.
    assert.equal(lookupAddress(t, 'x@elsewhere.test', at(1_000_000 + 61_000)).result, 'foreign');
  });
});

describe('forward values from LDAP', () => {
  const own = ['alice@example.org', 'alice@example.com'];
  test('plain addresses pass', () => {
    assert.deepEqual(checkForward('alice@gmail.test', own), { ok: true, address: 'alice@gmail.test' });
    assert.deepEqual(checkForward(' a.b+c@sub.example.net ', own), {
      ok: true,
      address: 'a.b+c@sub.example.net',
    });
  });
  test('pipes, files, CR/LF, non-addresses and the entry itself are refused', () => {
    for (const [v, why] of [
      ['|/usr/bin/procmail', /pipe/],
      ['/var/mail/alice', /file/],
      ['~/Mail', /file/],
      [':include:/etc/list', /include/],
      ['a@b.test\r\nRCPT TO:<x@y>', /control/],
      ['a@b.test\n', /control/],
      ['alice', /plain address/],
      ['a@b@c.test', /plain address/],
      ['"a b"@c.test', /plain address/],
      ['a@b.test, c@d.test', /plain address/],
      ['<a@b.test>', /plain address/],
      ['ALICE@example.org', /own address/],
      ['alice@example.com', /own address/],
    ] as const) {
      const r = checkForward(v, own);
      assert.equal(r.ok, false, v);
      if (!r.ok) assert.match(r.reason, why, v);
    }
  });
});

describe('the snapshot', () => {
  test('round-trips, hashes independently of order, and measures deletions', () => {
    const s = {
      v: 1 as const,
      version: 3,
      fetchedAt: 42,
      server: 'ldap://x',
      contentHash: entriesHash({ a: ['x@y.test'], b: [] }),
      entries: { a: ['x@y.test'], b: [] },
      refused: [{ uid: 'c', value: '|x', reason: 'a pipe to a program' }],
    };
    assert.deepEqual(decodeSnapshot(encodeSnapshot(s)), s);
    assert.equal(entriesHash({ b: [], a: ['x@y.test'] }), s.contentHash);
    assert.notEqual(entriesHash({ a: ['x@z.test'], b: [] }), s.contentHash);
    assert.equal(deletionShare({ a: 1, b: 1, c: 1, d: 1 }, { a: 1 }), 0.75);
    assert.equal(deletionShare({}, { a: 1 }), 0);
  });
});

describe('config file watch', () => {
  test('a valid change is handed over; an invalid one is refused with the key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-reload-'));
    const file = join(dir, 'sluice.yaml');
    await writeFile(file, 'domains: { primary: example.org }\n');
    const applied: SluiceConfig[] = [];
    const refused: string[] = [];
    const stop = watchConfigFile({
      file,
      onConfig: (c) => applied.push(c),
      onRefused: (r) => refused.push(r),
      debounceMs: 50,
    });
    try {
      await writeFile(
        file,
        'domains: { primary: example.org }\nrouting: { forwards: { a@example.org: [b@x.test] } }\n',
      );
      await waitUntil('the change applied', () => applied.length === 1);
      assert.deepEqual(applied[0]?.routing.forwards, { 'a@example.org': ['b@x.test'] });
      await writeFile(file, 'domains: { primary: example.org }\nrouting: { forwardz: {} }\n');
      await waitUntil('the bad file refused', () => refused.length === 1);
      assert.match(refused[0] ?? '', /routing\.forwardz/);
      assert.equal(applied.length, 1);
    } finally {
      stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a 10,000-entry directory', () => {
  test('builds, answers every entry, and reports lookups/s and memory', (t) => {
    const entries: Record<string, string[]> = {};
    for (let i = 0; i < 10_000; i++)
      entries[`user${i}`] =
        i % 10 === 0
          ? []
          : [`user${i}@elsewhere${i % 97}.test`, ...(i % 7 === 0 ? [`backup${i}@b.test`] : [])];
    const snap = {
      v: 1 as const,
      version: 1,
      fetchedAt: Date.now(),
      server: 'x',
      contentHash: entriesHash(entries),
      entries,
      refused: [],
    };
    const encoded = encodeSnapshot(snap);
    const cfg = config({ routing: { ldap: { ...LDAP, maxStaleness: 3600 } } });
    global.gc?.();
    const heap0 = process.memoryUsage().heapUsed;
    const table = buildRoutingTable(cfg, {
      version: 1,
      fetchedAt: snap.fetchedAt,
      entries: decodeSnapshot(encoded).entries,
    });
    global.gc?.();
    const heap1 = process.memoryUsage().heapUsed;
    const n = 50_000;
    const t0 = performance.now();
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const r = lookupAddress(table, `user${i % 10_000}@example.org`);
      if (r.result === 'ok') ok++;
    }
    const ms = performance.now() - t0;
    assert.equal(ok, n - n / 10, 'every entry with a forward answers ok, the others unknown');
    t.diagnostic(
      `10,000 entries: snapshot ${encoded.length} bytes gzip'd; table heap ~${((heap1 - heap0) / 1048576).toFixed(1)} MiB (gc ${global.gc ? 'on' : 'off'}); ${Math.round(n / (ms / 1000))} lookups/s from the snapshot (in-process)`,
    );
    assert.ok(encoded.length < 1024 * 1024, 'the snapshot fits one NATS message');
  });
});
