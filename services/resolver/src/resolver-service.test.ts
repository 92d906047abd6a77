/**
 * The resolver service on a real nats-server: the RCPT-time lookup over NATS
 * request/reply, and the resolve stage feeding the real rewriter, whose
 * output is read from the deliver stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Bus, RpcError } from '@sluice/bus';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import {
  consumers,
  decodeEnvelope,
  type Envelope,
  headerNames,
  lookupReplySchema,
  newQueueId,
  parseEnvelope,
  partIdOf,
  type SluiceEvent,
  sha256Hex,
  streams,
  subjects,
} from '@sluice/proto';
import { rewriterService } from '@sluice/rewriter';
import type { RunningService, ServiceContext } from '@sluice/runtime';
import {
  collectStage,
  type NatsTestServer,
  stageAcks,
  startNats,
  startServiceContext,
  waitUntil,
} from '@sluice/test-harness';
import { resolverService } from './resolver-service.ts';
import { routeKey } from './route.ts';

let nats: NatsTestServer;
let bus: Bus;
let config: SluiceConfig;
let ctx: ServiceContext;
let events: SluiceEvent[];
let delivered: Envelope[] = [];
const running: RunningService[] = [];
const encoder = new TextEncoder();

before(async () => {
  nats = await startNats();
  config = parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org', aliases: ['example.com'] },
      routing: {
        aliases: {
          'info@example.org': ['alice@example.org', 'bob@example.org', 'carol@outside.test'],
          'ghost@example.org': ['gone@example.org'],
          'loop1@example.org': ['loop2@example.org'],
          'loop2@example.org': ['loop1@example.org'],
        },
        forwards: { 'alice@example.org': ['alice@forward.test'], 'bob@example.org': ['bob@forward.test'] },
      },
      transports: { 'forward.test': { host: '127.0.0.1', port: 2525 } },
      nats: { servers: [nats.url] },
    },
    'resolver-test',
  );
  ({ bus, ctx, events } = await startServiceContext(config, 'resolver-test'));
  // Stand-in for the egress: whatever reaches the deliver stream is kept.
  const collector = collectStage(bus, consumers.egress);
  delivered = collector.envelopes;
  running.push(collector);
  running.push(await rewriterService.start(ctx));
  running.push(await resolverService.start(ctx));
});

after(async () => {
  for (const s of running.reverse()) await s.stop();
  await bus?.close();
  await nats?.stop();
});

async function lookup(address: string) {
  const reply = await bus.request(
    subjects.resolverLookup,
    encoder.encode(JSON.stringify({ v: 1, address })),
    5000,
  );
  return lookupReplySchema.parse(JSON.parse(new TextDecoder().decode(reply)));
}

const resolverAcks = () => stageAcks(ctx.metrics, 'resolver');

describe('lookup over NATS request/reply', () => {
  test('ok, foreign, unknown and tempfail answers with their trail', async () => {
    const ok = await lookup('Info@Example.COM');
    assert.equal(ok.result, 'ok');
    assert.deepEqual(ok.targets, ['alice@forward.test', 'bob@forward.test', 'carol@outside.test']);
    assert.ok(ok.trail.includes('carol@outside.test: MX of outside.test'));
    assert.equal((await lookup('victim@elsewhere.test')).result, 'foreign');
    assert.equal((await lookup('nobody@example.org')).result, 'unknown');
    const loop = await lookup('loop1@example.org');
    assert.equal(loop.result, 'tempfail');
    assert.equal(loop.reason, 'alias loop in local configuration');
  });

  test('a malformed request gets an error reply, not silence', async () => {
    await assert.rejects(
      bus.request(subjects.resolverLookup, encoder.encode('{"v":1}'), 5000),
      (err: unknown) =>
        err instanceof RpcError && err.code === 'remote' && /invalid lookup request/.test(err.message),
    );
  });
});

describe('the resolve stage', () => {
  const id = newQueueId();
  const body = encoder.encode('hello');
  const envelope = parseEnvelope({
    v: 1,
    id,
    receivedAt: new Date().toISOString(),
    source: 'mx',
    receivedBy: 'mx.example.org',
    client: { ip: '192.0.2.1', helo: 'client.test' },
    mailFrom: { address: 'sender@sender.test' },
    recipients: [
      { address: 'info@example.com', original: 'info@example.com' },
      { address: 'bob@example.org', original: 'bob@example.org' },
      { address: 'ghost@example.org', original: 'ghost@example.org' },
    ],
    body: { kind: 'inline', size: body.length, sha256: sha256Hex(body) },
    hops: [{ stage: 'ingress', instance: 'i1', at: new Date().toISOString() }],
  });

  test('splits by route, publishes each part through the rewriter, dead-letters what became unknown', async () => {
    const stored = await bus.storeBody(id, body);
    const env: Envelope = { ...envelope, body: stored.ref };
    await bus.publishEnvelope(subjects.resolve, env, stored.inline, { msgId: `${id}:resolve` });

    const parts = await waitUntil('two parts on the deliver stream', () => {
      const mine = delivered.filter((e) => e.id === id);
      return mine.length === 2
        ? mine.sort((a, b) => routeKey(a.route!).localeCompare(routeKey(b.route!)))
        : undefined;
    });
    assert.deepEqual(
      parts.map((p) => [p.partId, p.route, p.recipients.map((r) => r.address)]),
      [
        [
          partIdOf(id, 'mx:outside.test', ['carol@outside.test']),
          { kind: 'mx', domain: 'outside.test' },
          ['carol@outside.test'],
        ],
        [
          partIdOf(id, 'smtp:forward.test', ['bob@forward.test', 'alice@forward.test']),
          { kind: 'smtp', name: 'forward.test', host: '127.0.0.1', port: 2525, lmtp: false },
          ['alice@forward.test', 'bob@forward.test'],
        ],
      ],
    );
    for (const p of parts) {
      assert.deepEqual(
        p.hops.map((h) => h.stage),
        ['ingress', 'resolver', 'rewriter'],
      );
      assert.deepEqual(p.body, stored.ref);
    }
    // bob was asked for directly and through info@: delivered once, for the first recipient.
    assert.deepEqual(parts[1]!.recipients[1]!.via, [
      'info@example.com',
      'info@example.org',
      'bob@example.org',
    ]);

    // The alias whose member is gone: dead-lettered with the reason, as a replayable envelope.
    const jsm = await bus.js.jetstreamManager();
    const dead = await waitUntil('the dead letter', async () => {
      const m = await jsm.streams.getMessage(streams.dead.name, { last_by_subj: subjects.dead('resolver') });
      return m && decodeEnvelope(m.data).envelope.id === id ? m : undefined;
    });
    assert.match(
      dead.header.get(headerNames.deadReason),
      /^unknown recipient after acceptance: gone@example\.org: no alias, forward or catch-all/,
    );
    const deadEnv = decodeEnvelope(dead.data).envelope;
    assert.deepEqual(
      deadEnv.recipients.map((r) => [r.address, r.original, r.status, r.via]),
      [['gone@example.org', 'ghost@example.org', 'failed', ['ghost@example.org']]],
    );

    const mine = await waitUntil('the timeline', () => {
      const ev = events.filter((e) => e.queueId === id);
      const count = (k: SluiceEvent['kind']) => ev.filter((e) => e.kind === k).length;
      return count('resolved') === 3 && count('rewritten') === 2 && count('dead-lettered') === 1
        ? ev
        : undefined;
    });
    const resolved = mine.filter(
      (e): e is Extract<SluiceEvent, { kind: 'resolved' }> => e.kind === 'resolved',
    );
    assert.deepEqual(
      resolved.map((e) => [e.recipient, e.targets, e.route, e.source]),
      [
        [
          'info@example.com',
          ['alice@forward.test', 'bob@forward.test', 'carol@outside.test'],
          'smtp:forward.test, mx:outside.test',
          'config routing.aliases, config routing.forwards',
        ],
        ['bob@example.org', ['bob@forward.test'], 'smtp:forward.test', 'config routing.forwards'],
        ['ghost@example.org', [], 'none', 'config routing.aliases'],
      ],
    );
    assert.ok(
      mine.some(
        (e) =>
          e.kind === 'dead-lettered' && e.reason === 'unknown recipient after acceptance at gone@example.org',
      ),
    );
  });

  test('a redelivered envelope republishes nothing new (deterministic part ids and message ids)', async () => {
    const jsm = await bus.js.jetstreamManager();
    const before = (await jsm.streams.info(streams.rewrite.name)).state.last_seq;
    const deadBefore = (await jsm.streams.info(streams.dead.name)).state.last_seq;
    const acks = await resolverAcks();
    const stored = await bus.storeBody(id, body);
    // The same envelope again under another message id: what a redelivery after a crash looks like.
    await bus.publishEnvelope(subjects.resolve, { ...envelope, body: stored.ref }, stored.inline, {
      msgId: `${id}:resolve-again`,
    });
    await waitUntil('the resolver to ack it', async () => (await resolverAcks()) > acks);
    assert.equal((await jsm.streams.info(streams.rewrite.name)).state.last_seq, before);
    assert.equal((await jsm.streams.info(streams.dead.name)).state.last_seq, deadBefore);
  });
});
