/**
 * Greylisting across two filter replicas: each replica has its own NATS
 * connection (its own Bus) to one real nats-server, and the triplets live in
 * the JetStream KV bucket the bus topology declares. Time is passed in
 * (`now`) so the retry window is tested without sleeping.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Bus, defaultBusConfig } from '@sluice/bus';
import { configSchema, parseConfig } from '@sluice/config';
import { encodeEnvelope, filterReplySchema, subjects } from '@sluice/proto';
import {
  type DnsServer,
  type NatsTestServer,
  startDnsServer,
  startNats,
  startServiceContext,
} from '@sluice/test-harness';
import { createDnsResolver } from './dns-resolver.ts';
import { filterService } from './filter-service.ts';
import { clientNetwork, type GreylistOptions, greylistCheck, tripletKey } from './greylist.ts';
import { envelope, message } from './test-messages.ts';
import { computeVerdict, type FilterPolicy } from './verdict.ts';

let nats: NatsTestServer;
let replicaA: Bus;
let replicaB: Bus;
let dns: DnsServer;
const TTL_MS = 3_600_000;

before(async () => {
  nats = await startNats();
  const cfg = (name: string) => defaultBusConfig({ servers: [nats.url], name, greylistTtlMs: TTL_MS });
  replicaA = await Bus.connect(cfg('filter-a'));
  await replicaA.ensureTopology();
  replicaB = await Bus.connect(cfg('filter-b'));
  dns = await startDnsServer([]);
});

after(async () => {
  await replicaA?.close();
  await replicaB?.close();
  await nats?.stop();
  await dns?.stop();
});

const opts: GreylistOptions = {
  delayMs: 300_000,
  retryWindowMs: 4 * 3_600_000,
  goodSenders: ['trusted.test'],
};

describe('greylisting', () => {
  test('first attempt greylisted on A; early retry on B still greylisted; retry in the window passes on B; A then allows', async () => {
    const env = envelope(message(), '198.51.100.7', { mailFrom: 'news@sender.test' });
    const t0 = Date.now();
    assert.deepEqual(await greylistCheck(env, replicaA, opts, t0), {
      result: 'greylist',
      why: 'new triplet',
    });
    assert.deepEqual(await greylistCheck(env, replicaB, opts, t0 + 60_000), {
      result: 'greylist',
      why: 'retry too early',
    });
    // The client retries from another address of the same /24 (RFC 6647 §4.1).
    const retry = { ...env, client: { ...env.client, ip: '198.51.100.99' } };
    assert.deepEqual(await greylistCheck(retry, replicaB, opts, t0 + 400_000), { result: 'pass' });
    // Auto-allow after success: later messages pass at once, on any replica.
    assert.deepEqual(await greylistCheck(env, replicaA, opts, t0 + 10 * 3_600_000), { result: 'pass' });
  });

  test('a passed triplet is rewritten (TTL restarted) at most once per refreshAfterMs', async () => {
    const o = { ...opts, refreshAfterMs: 3_600_000 };
    const env = envelope(message(), '203.0.113.9', { mailFrom: 'refresh@sender.test' });
    const key = tripletKey(env.client.ip, env.mailFrom.address, env.recipients[0]!.address);
    const t0 = Date.now();
    await greylistCheck(env, replicaA, o, t0);
    await greylistCheck(env, replicaA, o, t0 + 400_000); // passes, written at t0 + 400 s
    const rev = (await replicaA.greylistGet(key))!.revision;
    assert.deepEqual(await greylistCheck(env, replicaB, o, t0 + 1_000_000), { result: 'pass' });
    assert.equal((await replicaA.greylistGet(key))!.revision, rev, 'within the interval: no write');
    assert.deepEqual(await greylistCheck(env, replicaB, o, t0 + 400_000 + 3_600_000), { result: 'pass' });
    assert.ok((await replicaA.greylistGet(key))!.revision > rev, 'after it: rewritten');
  });

  test('a retry after the window starts over', async () => {
    const env = envelope(message(), '203.0.113.5', { mailFrom: 'late@sender.test' });
    const t0 = Date.now();
    await greylistCheck(env, replicaA, opts, t0);
    assert.deepEqual(await greylistCheck(env, replicaB, opts, t0 + opts.delayMs + opts.retryWindowMs + 1), {
      result: 'greylist',
      why: 'retry too late, starting over',
    });
  });

  test('one recipient not yet passed greylists the message; each recipient is its own triplet', async () => {
    const t0 = Date.now();
    const one = envelope(message(), '203.0.113.6', {
      mailFrom: 'multi@sender.test',
      recipients: ['a@example.org'],
    });
    await greylistCheck(one, replicaA, opts, t0);
    await greylistCheck(one, replicaA, opts, t0 + 400_000);
    const two = envelope(message(), '203.0.113.6', {
      mailFrom: 'multi@sender.test',
      recipients: ['a@example.org', 'b@example.org'],
    });
    assert.equal((await greylistCheck(two, replicaB, opts, t0 + 500_000)).result, 'greylist');
  });

  test('SRS senders, good senders and the submission door are exempt', async () => {
    const srs = envelope(message(), '198.51.100.8', { mailFrom: 'SRS0=HHH=TT=sender.test=alice@fwd.test' });
    assert.deepEqual(await greylistCheck(srs, replicaA, opts), { result: 'exempt', why: 'SRS sender' });
    const good = envelope(message(), '198.51.100.8', { mailFrom: 'x@mail.trusted.test' });
    assert.deepEqual(await greylistCheck(good, replicaA, opts), { result: 'exempt', why: 'good sender' });
    const sub = envelope(message(), '198.51.100.8', { source: 'submission' });
    assert.deepEqual(await greylistCheck(sub, replicaA, opts), {
      result: 'exempt',
      why: 'source submission',
    });
  });

  test('networks: IPv4 /24 and IPv6 /64; keys are KV-safe digests', () => {
    assert.equal(clientNetwork('198.51.100.7'), '198.51.100.0/24');
    assert.equal(clientNetwork('::ffff:198.51.100.7'), '198.51.100.0/24');
    assert.equal(clientNetwork('2001:db8:1:2:3::4'), '2001:0db8:0001:0002::/64');
    assert.equal(
      tripletKey('2001:db8:1:2::1', 'A@x', 'b@y'),
      tripletKey('2001:db8:1:2:ffff::9', 'a@x', 'B@Y'),
    );
    assert.match(tripletKey('1.2.3.4', '', 'b@y'), /^t\.[0-9a-f]{40}$/);
  });

  test('in the verdict: score over the greylist threshold answers greylist on A, the retry on B is tagged', async () => {
    const weights = configSchema.parse({ domains: { primary: 'example.org' } }).filter.weights;
    const policy = (store: Bus): FilterPolicy => ({
      weights,
      thresholds: { reject: 100, greylist: 0, tag: 0 },
      antiSpoofing: 'reject',
      ourDomains: new Set(['example.org']),
      engines: [],
      greylist: { store, options: { delayMs: 0, retryWindowMs: 60_000, goodSenders: [] } },
    });
    const resolver = createDnsResolver({ servers: [dns.address], timeoutSeconds: 1 });
    const body = message({ from: 'x@unknown.test' });
    const env = envelope(body, '192.0.2.44', { mailFrom: 'x@unknown.test' });
    const first = await computeVerdict(env, body, {
      authservId: 'mx.example.org',
      resolver,
      policy: policy(replicaA),
    });
    assert.equal(first.verdict.action, 'greylist');
    assert.ok(first.verdict.rules.some((r) => r.name === 'GREYLISTED'));
    const second = await computeVerdict(env, body, {
      authservId: 'mx.example.org',
      resolver,
      policy: policy(replicaB),
    });
    assert.equal(second.verdict.action, 'tag');
  });
});

describe('greylisting through two filter service replicas (the RPC the ingress makes)', () => {
  test('replica A greylists the first attempt; with A gone, replica B lets the retry through', async () => {
    const config = parseConfig(
      {
        hostname: 'mx.example.org',
        domains: { primary: 'example.org' },
        nats: { servers: [nats.url] },
        dns: { servers: [dns.address], timeout: 1 },
        filter: { actions: { reject: 100, greylist: 0, tag: 50 }, greylist: { enabled: true, delay: 0.001 } },
      },
      'greylist-test',
    );
    const body = message({ from: 'x@unknown.test' });
    const env = envelope(body, '192.0.2.77', { mailFrom: 'first@unknown.test' });
    const ask = async () =>
      filterReplySchema.parse(
        JSON.parse(
          new TextDecoder().decode(
            await replicaA.request(subjects.filterVerdict, encodeEnvelope(env, body), 10_000),
          ),
        ),
      ).verdict;

    const a = await startServiceContext(config, 'filter-a');
    const svcA = await filterService.start(a.ctx);
    await a.bus.nc.flush(); // the subscription is at the server before we ask (else: no responders)
    const first = await ask();
    await svcA.stop();
    await a.close();
    assert.equal(first.action, 'greylist');
    assert.equal(first.reason, 'Greylisted, please try again later');

    const b = await startServiceContext(config, 'filter-b');
    const svcB = await filterService.start(b.ctx);
    await b.bus.nc.flush();
    try {
      const retry = await ask();
      assert.equal(retry.action, 'accept');
      assert.ok(!retry.rules.some((r) => r.name === 'GREYLISTED'));
      assert.equal(b.events.find((e) => e.kind === 'verdict')?.instance, 'filter-b');
    } finally {
      await svcB.stop();
      await b.close();
    }
  });
});
