/**
 * The LDAP routing source against a real slapd (test/harness slapd.ts) and a
 * real nats-server: what is read and what is refused (CR/LF, pipe, self-loop),
 * RFC 4515 escaping against filter injection, the shared snapshot in
 * JetStream KV, LDAP stopped / killed / frozen while lookups run, the
 * staleness bound (ok only while the snapshot is young enough, tempfail past
 * it, never "unknown user"), a refresh deleting most entries held back, and
 * a replica started while LDAP is down answering from its peers' snapshot.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Bus } from '@sluice/bus';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import {
  consumers,
  type Envelope,
  type LdapRefreshReply,
  type LookupReply,
  ldapRefreshReplySchema,
  lookupReplySchema,
  newQueueId,
  parseEnvelope,
  sha256Hex,
  subjects,
} from '@sluice/proto';
import type { RunningService, ServiceContext } from '@sluice/runtime';
import {
  collectStage,
  type LdapTestEntry,
  type NatsTestServer,
  type SlapdServer,
  sluiceCommand,
  startNats,
  startServiceContext,
  startSlapd,
  waitUntil,
} from '@sluice/test-harness';
import { readEntry } from './ldap-directory.ts';
import { escapeFilterValue } from './ldap-filter.ts';
import { createResolverService } from './resolver-service.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const ENTRIES: LdapTestEntry[] = [
  { uid: 'alice', forwards: ['alice@gmail.test'] },
  { uid: 'bob', forwards: ['bob@riseup.test', 'bob@backup.test'] },
  { uid: 'carol' },
  { uid: 'crlf', forwards: ['crlf@ok.test\r\nRCPT TO:<victim@x.test>'] },
  { uid: 'piper', forwards: ['|/usr/bin/procmail'] },
  { uid: 'filer', forwards: ['/var/mail/filer'] },
  { uid: 'selfish', forwards: ['selfish@sluice.test'] },
  { uid: 'evil*)(uid=*', forwards: ['evil@attacker.test'] },
  { uid: 'ping', forwards: ['pong@sluice.test'] },
  { uid: 'pong', forwards: ['ping@sluice.test'] },
  // Padding so that deleting the trap entries stays under the deletion guard.
  ...Array.from({ length: 40 }, (_, i) => ({ uid: `user${i}`, forwards: [`user${i}@elsewhere.test`] })),
];

let nats: NatsTestServer;
let slapd: SlapdServer;

function configFor(maxStaleness: number, refreshInterval = 1800): SluiceConfig {
  return parseConfig(
    {
      domains: { primary: 'sluice.test', aliases: ['alias.test'] },
      routing: {
        aliases: { 'postmaster@sluice.test': ['root@outside.test'] },
        ldap: {
          urls: [slapd.url],
          baseDn: slapd.baseDn,
          filter: '(objectClass=account)',
          timeout: 1,
          refreshInterval,
          maxStaleness,
          maxDeleteShare: 0.2,
        },
      },
      nats: { servers: [nats.url] },
    },
    'ldap-test',
  );
}

async function startResolver(config: SluiceConfig, name: string) {
  const sc = await startServiceContext(config, name);
  const svc: RunningService = await createResolverService().start(sc.ctx);
  // The lookup subscription is at the server before any test asks (else: "no responders" under load).
  await sc.bus.nc.flush();
  return {
    ...sc,
    svc,
    async stop() {
      await svc.stop();
      await sc.close();
    },
  };
}

async function lookup(bus: Bus, address: string): Promise<LookupReply> {
  const data = await bus.request(
    subjects.resolverLookup,
    encoder.encode(JSON.stringify({ v: 1, address })),
    5000,
  );
  return lookupReplySchema.parse(JSON.parse(decoder.decode(data)));
}

async function refresh(bus: Bus, force = false): Promise<LdapRefreshReply> {
  const data = await bus.request(
    subjects.resolverLdapRefresh,
    encoder.encode(JSON.stringify({ v: 1, force })),
    10_000,
  );
  return ldapRefreshReplySchema.parse(JSON.parse(decoder.decode(data)));
}

async function metric(ctx: ServiceContext, name: string): Promise<number> {
  const m = await ctx.metrics.registry.getSingleMetric(name)?.get();
  return m?.values[0]?.value ?? Number.NaN;
}

before(async () => {
  nats = await startNats();
  slapd = await startSlapd(ENTRIES);
});

after(async () => {
  await slapd?.close();
  await nats?.stop();
});

describe('LDAP routing source (real slapd)', () => {
  test('forwards, multi-valued forwards and entries without one route; traps are refused and reported', async () => {
    const r = await startResolver(configFor(3600), 'ldap-read');
    try {
      const first = await refresh(r.bus);
      assert.ok(['applied', 'unchanged'].includes(first.outcome), first.message);
      const v = first.snapshotVersion;
      assert.ok(v && v >= 1);
      const alice = await lookup(r.bus, 'alice@sluice.test');
      assert.equal(alice.result, 'ok');
      assert.deepEqual(alice.targets, ['alice@gmail.test']);
      assert.deepEqual(alice.decidedBy?.[0]?.source, `ldap snapshot ${v}`);
      assert.equal(alice.decidedBy?.[0]?.snapshotVersion, v);
      // Alias domain and plus-addressing reach the directory's entry too.
      assert.deepEqual((await lookup(r.bus, 'alice+lists@alias.test')).targets, ['alice@gmail.test']);
      const bob = await lookup(r.bus, 'bob@sluice.test');
      assert.deepEqual(bob.targets.sort(), ['bob@backup.test', 'bob@riseup.test']);
      // Known to LDAP but no forward and no mailbox transport: unknown, decided by the snapshot.
      const carol = await lookup(r.bus, 'carol@sluice.test');
      assert.equal(carol.result, 'unknown');
      assert.equal(carol.decidedBy?.[0]?.source, `ldap snapshot ${v}`);
      // The traps: never routed.
      for (const uid of ['crlf', 'piper', 'filer', 'selfish']) {
        const reply = await lookup(r.bus, `${uid}@sluice.test`);
        assert.equal(reply.result, 'unknown', `${uid}: ${JSON.stringify(reply)}`);
        assert.deepEqual(reply.targets, []);
      }
      const reasons = Object.fromEntries(first.refused.map((x) => [x.uid, x.reason]));
      assert.match(reasons.crlf ?? '', /control character/);
      assert.match(reasons.piper ?? '', /pipe/);
      assert.match(reasons.filer ?? '', /file/);
      assert.match(reasons.selfish ?? '', /own address/);
      assert.equal(await metric(r.ctx, 'sluice_resolver_ldap_refused_forwards'), 4);
      // A loop across two directory entries is cut: tempfail, not unknown.
      const ping = await lookup(r.bus, 'ping@sluice.test');
      assert.equal(ping.result, 'tempfail');
      assert.match(ping.trail.join('\n'), /alias loop/);
      // Config rules still decide their own addresses.
      assert.equal(
        (await lookup(r.bus, 'postmaster@sluice.test')).decidedBy?.[0]?.source,
        'config routing.aliases',
      );
    } finally {
      await r.stop();
    }
  });

  test('a uid crafted for filter injection matches only itself (RFC 4515 escaping)', async () => {
    assert.equal(escapeFilterValue('*)(uid=*'), '\\2a\\29\\28uid=\\2a');
    const cfg = configFor(3600).routing.ldap!;
    const ctx = { domains: ['sluice.test'] };
    // Unescaped, "*)(uid=*" would match every entry; escaped it matches none.
    assert.deepEqual(Object.keys((await readEntry(cfg, ctx, '*)(uid=*')).entries), []);
    assert.deepEqual(Object.keys((await readEntry(cfg, ctx, 'evil*)(uid=*')).entries), ['evil*)(uid=*']);
    assert.deepEqual(Object.keys((await readEntry(cfg, ctx, 'alice')).entries), ['alice']);
  });

  test('lookup --live shows the directory now next to the snapshot, with the address escaped', async () => {
    const r = await startResolver(configFor(3600), 'ldap-live');
    try {
      assert.notEqual((await refresh(r.bus)).outcome, 'failed');
      const live = async (address: string) => {
        const data = await r.bus.request(
          subjects.resolverLookup,
          encoder.encode(JSON.stringify({ v: 1, address, live: true })),
          10_000,
        );
        return lookupReplySchema.parse(JSON.parse(decoder.decode(data)));
      };
      const bob = await live('bob+x@sluice.test');
      assert.equal(bob.result, 'ok');
      assert.match(
        bob.trail.at(-1) ?? '',
        /^LDAP now \(ldap:\/\/127\.0\.0\.1:\d+\): uid bob -> bob@riseup\.test, bob@backup\.test$/,
      );
      // "*" would match every entry unescaped: the directory answers for the literal uid only.
      const star = await live('*@sluice.test');
      assert.equal(star.result, 'unknown');
      assert.match(star.trail.at(-1) ?? '', /no entry for uid \*$/);
      const piper = await live('piper@sluice.test');
      assert.match(
        piper.trail.join('\n'),
        /forward "\|\/usr\/bin\/procmail" refused \(a pipe to a program\)/,
      );
      // Without --live the directory is not asked.
      assert.doesNotMatch((await lookup(r.bus, 'bob@sluice.test')).trail.join('\n'), /LDAP now/);
    } finally {
      await r.stop();
    }
  });

  test('LDAP stopped, killed and frozen during a lookup load: every lookup answers from the snapshot', async () => {
    const r = await startResolver(configFor(3600), 'ldap-outage');
    try {
      const fresh = await refresh(r.bus);
      assert.ok(['applied', 'unchanged'].includes(fresh.outcome));
      assert.equal(await metric(r.ctx, 'sluice_resolver_ldap_up'), 1);
      const outages: [string, () => Promise<void>, () => Promise<void>][] = [
        ['stopped', () => slapd.stop(), () => slapd.start()],
        ['killed', () => slapd.kill(), () => slapd.start()],
        ['frozen', async () => slapd.freeze(), async () => slapd.thaw()],
      ];
      for (const [what, breakIt, repair] of outages) {
        let answered = 0;
        const load = (async () => {
          for (let round = 0; round < 20; round++) {
            const replies = await Promise.all(
              Array.from({ length: 20 }, (_, i) =>
                lookup(r.bus, i % 2 ? 'alice@sluice.test' : 'bob@sluice.test'),
              ),
            );
            for (const [i, reply] of replies.entries()) {
              assert.equal(reply.result, 'ok', `${what}: ${JSON.stringify(reply)}`);
              assert.equal(reply.targets.length, i % 2 ? 1 : 2);
            }
            answered += replies.length;
          }
        })();
        await breakIt();
        const failed = await refresh(r.bus);
        assert.equal(failed.outcome, 'failed', `${what}: ${failed.message}`);
        assert.match(failed.message, /serving snapshot/);
        assert.equal(await metric(r.ctx, 'sluice_resolver_ldap_up'), 0);
        await load;
        assert.equal(answered, 400, `${what}: every lookup answered`);
        await repair();
        await waitUntil(`LDAP back after ${what}`, async () => (await refresh(r.bus)).outcome !== 'failed');
        assert.equal(await metric(r.ctx, 'sluice_resolver_ldap_up'), 1);
      }
    } finally {
      slapd.thaw();
      await r.stop();
    }
  });

  test('staleness bound: ok only while the snapshot is young enough, then tempfail (never unknown); a new replica shares the snapshot', async () => {
    const bound = 3;
    const r = await startResolver(configFor(bound, 2), 'ldap-stale');
    try {
      assert.notEqual((await refresh(r.bus)).outcome, 'failed');
      await slapd.stop();
      assert.equal((await lookup(r.bus, 'alice@sluice.test')).result, 'ok', 'a young snapshot answers');
      const violations: string[] = [];
      const reply = await waitUntil(
        'the snapshot to pass the staleness bound',
        async () => {
          const a = await lookup(r.bus, 'alice@sluice.test');
          const age = a.decidedBy?.find((d) => d.source.startsWith('ldap'))?.snapshotAgeSeconds;
          // Every answer on the way respects the bound: ok while young enough, tempfail past it.
          if (a.result === 'ok') {
            if (age === undefined || age > bound + 1) violations.push(JSON.stringify(a));
            return false;
          }
          return a;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      assert.deepEqual(violations, [], 'ok answers from a snapshot past the bound');
      assert.equal(reply.result, 'tempfail');
      assert.equal(reply.reason, 'routing directory unavailable');
      assert.match(reply.trail.join('\n'), /maxStaleness/);
      assert.ok((reply.decidedBy?.find((d) => d.source === 'ldap')?.snapshotAgeSeconds ?? 0) >= bound);
      // Unknown users are not "unknown" either: the directory cannot tell now.
      assert.equal((await lookup(r.bus, 'nobody@sluice.test')).result, 'tempfail');
      // Addresses the config decides keep working.
      assert.equal((await lookup(r.bus, 'postmaster@sluice.test')).result, 'ok');
      await slapd.start();
      assert.notEqual((await refresh(r.bus)).outcome, 'failed');
      assert.equal((await lookup(r.bus, 'alice@sluice.test')).result, 'ok');
      await r.stop();
      // A replica started while LDAP is down answers from the snapshot its peer stored.
      await slapd.stop();
      const replica = await startResolver(configFor(3600), 'ldap-replica');
      try {
        const a = await lookup(replica.bus, 'alice@sluice.test');
        assert.equal(a.result, 'ok', JSON.stringify(a));
        assert.deepEqual(a.targets, ['alice@gmail.test']);
      } finally {
        await replica.stop();
      }
    } finally {
      await slapd.start();
    }
  });

  test('the sluice command: ldap refresh and lookup ask the running resolver', async () => {
    const r = await startResolver(configFor(3600), 'ldap-cli');
    const dir = await mkdtemp(join(tmpdir(), 'sluice-ldap-cli-'));
    try {
      const file = join(dir, 'sluice.yaml');
      const cfg = configFor(3600).routing.ldap!;
      await writeFile(
        file,
        JSON.stringify({
          domains: { primary: 'sluice.test', aliases: ['alias.test'] },
          routing: { ldap: { urls: cfg.urls, baseDn: cfg.baseDn, filter: cfg.filter } },
          nats: { servers: [nats.url] },
        }),
      );
      // Asynchronously: the resolver answering runs in this process.
      const sluice = (...args: string[]) =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          execFile(sluiceCommand, [...args, '--config', file], { encoding: 'utf8' }, (err, stdout, stderr) =>
            resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
          );
        });
      const refreshed = await sluice('ldap', 'refresh');
      assert.equal(refreshed.status, 0, refreshed.stderr);
      assert.match(refreshed.stdout, /^ldap refresh: (applied|unchanged): snapshot \d+/);
      assert.match(
        refreshed.stdout,
        /refused forward of piper: "\|\/usr\/bin\/procmail" \(a pipe to a program\)/,
      );
      const looked = await sluice('lookup', 'alice@sluice.test');
      assert.equal(looked.status, 0, looked.stderr);
      assert.match(looked.stdout, /decided by: ldap snapshot \d+ \(snapshot version \d+, \d+ s old\)/);
      assert.match(looked.stdout, /=> alice@gmail\.test/);
      const json = JSON.parse((await sluice('lookup', 'carol@sluice.test', '--json')).stdout);
      assert.equal(json.result, 'unknown');
    } finally {
      await rm(dir, { recursive: true, force: true });
      await r.stop();
    }
  });

  test('a refresh deleting most entries is held back; --force applies it', async () => {
    const r = await startResolver(configFor(3600), 'ldap-delete');
    try {
      const base = await refresh(r.bus);
      assert.notEqual(base.outcome, 'failed', base.message);
      const version = base.snapshotVersion!;
      const victims = ENTRIES.map((e) => e.uid).filter((u) => u.startsWith('user'));
      await slapd.remove(victims);
      const held = await refresh(r.bus);
      assert.equal(held.outcome, 'held', held.message);
      assert.match(held.message, /maxDeleteShare/);
      assert.equal(held.snapshotVersion, version);
      // Still routed from the snapshot in use.
      assert.deepEqual((await lookup(r.bus, 'user7@sluice.test')).targets, ['user7@elsewhere.test']);
      const forced = await refresh(r.bus, true);
      assert.equal(forced.outcome, 'applied');
      assert.equal(forced.snapshotVersion, version + 1);
      assert.equal((await lookup(r.bus, 'user7@sluice.test')).result, 'unknown');
      await slapd.add(ENTRIES.filter((e) => e.uid.startsWith('user')));
    } finally {
      await r.stop();
    }
  });

  test('the resolve stage names the snapshot in the resolved event; past the bound an envelope waits, then resolves when LDAP is back', async () => {
    const r = await startResolver(configFor(2, 1), 'ldap-resolve');
    const rewrite = collectStage(r.bus, consumers.rewriter);
    const send = async (to: string) => {
      const id = newQueueId();
      const body = encoder.encode('hello');
      const stored = await r.bus.storeBody(id, body);
      const env: Envelope = parseEnvelope({
        v: 1,
        id,
        receivedAt: new Date().toISOString(),
        source: 'mx',
        receivedBy: 'mx.sluice.test',
        client: { ip: '192.0.2.1', helo: 'client.test' },
        mailFrom: { address: 'sender@sender.test' },
        recipients: [{ address: to, original: to }],
        body: { kind: 'inline', size: body.length, sha256: sha256Hex(body) },
        hops: [{ stage: 'ingress', instance: 'i1', at: new Date().toISOString() }],
      });
      await r.bus.publishEnvelope(subjects.resolve, { ...env, body: stored.ref }, stored.inline, {
        msgId: `${id}:resolve`,
      });
      return id;
    };
    const partOf = (id: string) => rewrite.envelopes.find((e) => e.id === id);
    try {
      const first = await refresh(r.bus);
      assert.notEqual(first.outcome, 'failed');
      const id1 = await send('alice@sluice.test');
      const part1 = await waitUntil('the first part', () => partOf(id1));
      assert.deepEqual(
        part1.recipients.map((x) => x.address),
        ['alice@gmail.test'],
      );
      const resolved = r.events.find((e) => e.queueId === id1 && e.kind === 'resolved');
      assert.ok(resolved && resolved.kind === 'resolved');
      assert.match(resolved.source, /^ldap snapshot \d+$/);

      await slapd.stop();
      await waitUntil(
        'lookups to tempfail past the bound',
        async () => (await lookup(r.bus, 'bob@sluice.test')).result === 'tempfail',
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      const retriesBefore = await retryCount(r.ctx);
      const id2 = await send('bob@sluice.test');
      await waitUntil(
        'the resolver to hold the envelope back',
        async () => (await retryCount(r.ctx)) > retriesBefore,
        { timeoutMs: 30_000 },
      );
      assert.equal(partOf(id2), undefined);
      assert.equal(r.events.filter((e) => e.queueId === id2 && e.kind === 'dead-lettered').length, 0);
      await slapd.start();
      // No operator action: the interval refresh brings the snapshot back, the retry resolves it.
      const targets2 = await waitUntil(
        'the held envelope resolved (one part per route)',
        () => {
          const got = rewrite.envelopes
            .filter((e) => e.id === id2)
            .flatMap((e) => e.recipients.map((x) => x.address));
          return got.length === 2 && got.sort();
        },
        { timeoutMs: 30_000 },
      );
      assert.deepEqual(targets2, ['bob@backup.test', 'bob@riseup.test']);
    } finally {
      await slapd.start();
      await rewrite.stop();
      await r.stop();
    }
  });
});

async function retryCount(ctx: ServiceContext): Promise<number> {
  const m = await ctx.metrics.registry.getSingleMetric('sluice_stage_processed_total')?.get();
  return m?.values.find((v) => v.labels.stage === 'resolver' && v.labels.outcome === 'retry')?.value ?? 0;
}
