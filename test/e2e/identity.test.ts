/**
 * Identities that survive a routing change, and an envelope that survives an
 * older reader — through the real resolver, rewriter and egress on a real
 * nats-server, delivering to a real SMTP sink (decisions/0006, 0004).
 *
 *   1. A routing change between a crash and the redelivery: the resolver
 *      publishes its parts under table 1 and does not ack (its handler
 *      answers "retry" instead of "ack", so JetStream redelivers the input,
 *      as after a crash between publish and ack); the parts are delivered;
 *      a resolver with table 2 — where bob moved to another transport and
 *      carol joined the alias — resolves the redelivery. Nobody is lost,
 *      nobody gets two copies, counted at the sink.
 *   2. Fields from the future (top level and nested) published into the
 *      resolve stream reach the egress consumer intact.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Bus, Disposition, EnvelopeDelivery, EnvelopeHandler } from '@sluice/bus';
import { type ConfigInput, parseConfig } from '@sluice/config';
import { createEgressService } from '@sluice/egress';
import {
  type ConsumerSpec,
  dedupIds,
  type Envelope,
  newQueueId,
  parseEnvelope,
  subjects,
} from '@sluice/proto';
import { resolverService } from '@sluice/resolver';
import { rewriterService } from '@sluice/rewriter';
import type { RunningService, ServiceContext } from '@sluice/runtime';
import {
  type NatsTestServer,
  type SmtpSink,
  stageAcks,
  startNats,
  startServiceContext,
  startSmtpSink,
  type TestServiceContext,
  waitForDrainedQueues,
  waitUntil,
} from '@sluice/test-harness';

let nats: NatsTestServer;
let sink: SmtpSink;
const contexts: TestServiceContext[] = [];
const running: RunningService[] = [];
/** Every envelope the egress consumer was handed, as the egress decoded it. */
const atEgress: Envelope[] = [];
let egressCtx: ServiceContext;

const encoder = new TextEncoder();

function config(instance: string, extra: Partial<ConfigInput>) {
  return parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org' },
      nats: { servers: [nats.url] },
      bus: { ackWait: 5 },
      log: { level: 'warn' },
      ...extra,
    },
    instance,
  );
}

/** Table 1: alice's domain has a transport, bob's goes by the relay. */
const table1 = (port: number): Partial<ConfigInput> => ({
  routing: { aliases: { 'team@example.org': ['alice@a.test', 'bob@b.test'] } },
  transports: { 'a.test': { host: '127.0.0.1', port } },
  relay: { host: '127.0.0.1', port },
});

/** Table 2: bob's domain got a transport of its own (he moves route), carol joined the alias. */
const table2 = (port: number): Partial<ConfigInput> => ({
  routing: { aliases: { 'team@example.org': ['alice@a.test', 'bob@b.test', 'carol@a.test'] } },
  transports: { 'a.test': { host: '127.0.0.1', port }, 'b.test': { host: '127.0.0.1', port } },
  relay: { host: '127.0.0.1', port },
});

/**
 * The context with its bus' consumeEnvelopes wrapped: `wrap` sees each
 * delivery and the disposition the service's handler returned, and decides
 * the disposition the bus gets.
 */
function tapped(
  ctx: ServiceContext,
  wrap: (d: EnvelopeDelivery, disposition: Disposition) => Promise<Disposition> | Disposition,
): ServiceContext {
  const bus = new Proxy(ctx.bus, {
    get(target, prop) {
      if (prop === 'consumeEnvelopes') {
        return (spec: ConsumerSpec, opts: { concurrency: number }, handler: EnvelopeHandler) =>
          target.consumeEnvelopes(spec, opts, async (d) => wrap(d, await handler(d)));
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { ...ctx, bus };
}

async function context(instance: string, extra: Partial<ConfigInput>): Promise<TestServiceContext> {
  const c = await startServiceContext(config(instance, extra), instance);
  contexts.push(c);
  return c;
}

/** An accepted envelope without its body reference (stored by publishAccepted). */
type Accepted = { id: string } & Record<string, unknown>;

async function publishAccepted(bus: Bus, env: Accepted, body: Uint8Array): Promise<void> {
  const stored = await bus.storeBody(env.id, body);
  const full = parseEnvelope({ ...env, body: stored.ref });
  await bus.publishEnvelope(subjects.resolve, full, stored.inline, { msgId: dedupIds.accepted(full) });
}

function accepted(id: string, recipients: string[], extra: Record<string, unknown> = {}): Accepted {
  return {
    v: 1,
    id,
    receivedAt: new Date().toISOString(),
    source: 'mx',
    receivedBy: 'mx.example.org',
    client: { ip: '192.0.2.1', helo: 'client.test' },
    mailFrom: { address: 'sender@sender.test' },
    recipients: recipients.map((a) => ({ address: a, original: a, status: 'pending' })),
    prepend: [],
    hops: [{ stage: 'ingress', instance: 'test', at: new Date().toISOString() }],
    ...extra,
  };
}

/** How many copies each recipient got at the sink, for messages whose body carries `tag`. */
function copiesAtSink(tag: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of sink.messages) {
    if (!m.raw.includes(Buffer.from(tag))) continue;
    for (const r of m.rcptTo) counts.set(r, (counts.get(r) ?? 0) + 1);
  }
  return counts;
}

before(async () => {
  nats = await startNats();
  sink = await startSmtpSink({ port: 0 });
  const shared = await context('pipeline', table1(sink.port));
  egressCtx = tapped(shared.ctx, (d, disposition) => {
    atEgress.push(d.envelope);
    return disposition;
  });
  running.push(await createEgressService().start(egressCtx));
  running.push(await rewriterService.start(shared.ctx));
});

after(async () => {
  for (const s of running.reverse()) await s.stop().catch(() => {});
  for (const c of contexts) await c.close();
  await sink?.stop();
  await nats?.stop();
});

test('a routing change between a crash and the redelivery: nobody lost, nobody twice', async () => {
  const id = newQueueId();
  const tag = `routing-change-${id}`;
  const egressAcks = () => stageAcks(egressCtx.metrics, 'egress');

  // Resolver 1 (table 1) publishes its parts, then "crashes" before its ack: the handler's
  // answer is replaced by a retry, held until the parts it published are delivered.
  const c1 = await context('resolver-1', table1(sink.port));
  let releaseFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => {
    releaseFirst = resolve;
  });
  const seen: number[] = [];
  const resolver1 = await resolverService.start(
    tapped(c1.ctx, async (d, disposition) => {
      seen.push(d.deliveryCount);
      if (d.envelope.id !== id) return disposition;
      await firstHeld;
      return { kind: 'retry', delayMs: 0, reason: 'simulated crash before the ack' };
    }),
  );
  running.push(resolver1);

  await publishAccepted(
    c1.bus,
    accepted(id, ['team@example.org']),
    encoder.encode(`Subject: ${tag}\r\n\r\nhi\r\n`),
  );

  // Table 1's parts (alice by transport a.test, bob by the relay) are delivered and acked by the egress.
  await waitUntil('alice and bob delivered under table 1', async () => {
    const c = copiesAtSink(tag);
    return c.get('alice@a.test') === 1 && c.get('bob@b.test') === 1 && (await egressAcks()) >= 2;
  });
  const acksUnderTable1 = await egressAcks();
  const partsUnderTable1 = atEgress.filter((e) => e.id === id).map((e) => e.partId);
  assert.equal(partsUnderTable1.length, 2);

  // The crash: resolver 1 stops pulling, its held delivery returns unacked (redelivered).
  const stopping = resolver1.stop();
  releaseFirst();
  await stopping;
  assert.deepEqual(seen, [1], 'resolver 1 saw the message once');

  // The config reload: resolver 2 on table 2 gets the redelivery.
  const c2 = await context('resolver-2', table2(sink.port));
  running.push(await resolverService.start(c2.ctx));

  // Table 2's parts are new content, so new ids: both reach the egress (not dropped as duplicates).
  const table2Parts = await waitUntil('the parts of table 2 at the egress', () => {
    const parts = atEgress.filter((e) => e.id === id && !partsUnderTable1.includes(e.partId));
    return parts.length === 2 ? parts : undefined;
  });
  assert.deepEqual(
    table2Parts
      .map((p) => [
        p.route?.kind === 'smtp' ? p.route.name : p.route?.kind,
        p.recipients.map((r) => r.address),
      ])
      .sort(),
    [
      ['a.test', ['alice@a.test', 'carol@a.test']],
      ['b.test', ['bob@b.test']],
    ],
  );
  await waitUntil(
    'the egress to finish the parts of table 2',
    async () => (await egressAcks()) >= acksUnderTable1 + 2,
  );
  await waitForDrainedQueues(c2.bus, 20_000);

  // Counted at the sink: alice and bob (moved) once each from table 1, carol (added) once from table 2.
  assert.deepEqual(Object.fromEntries(copiesAtSink(tag)), {
    'alice@a.test': 1,
    'bob@b.test': 1,
    'carol@a.test': 1,
  });
});

test('fields from the future published into the resolve stream reach the egress unchanged', async () => {
  const id = newQueueId();
  const tag = `future-${id}`;
  const bus = contexts[0]!.bus;
  const future = {
    fromTheFuture: { version: 7, list: ['a', 'b'] },
    client: {
      ip: '192.0.2.1',
      helo: 'client.test',
      futureClient: 'kept',
      tls: { protocol: 'TLSv1.3', cipher: 'X', futureTls: 1 },
    },
    mailFrom: { address: 'sender@sender.test', futureSender: { srs: 'v2' } },
    recipients: [
      {
        address: 'team@example.org',
        original: 'team@example.org',
        status: 'pending',
        futureRecipient: [1, 2, 3],
      },
    ],
  };
  // A resolver on table 2 (another one may still run from the test before: same table).
  const c3 = await context('resolver-3', table2(sink.port));
  running.push(await resolverService.start(c3.ctx));
  await publishAccepted(bus, accepted(id, [], future), encoder.encode(`Subject: ${tag}\r\n\r\nhi\r\n`));

  const parts = await waitUntil('both parts at the egress', () => {
    const mine = atEgress.filter((e) => e.id === id);
    return mine.length === 2 ? mine : undefined;
  });
  for (const p of parts) {
    assert.deepEqual(p['fromTheFuture'], future.fromTheFuture);
    assert.equal(p.client['futureClient'], 'kept');
    assert.equal(p.client.tls?.['futureTls'], 1);
    assert.deepEqual(p.mailFrom['futureSender'], { srs: 'v2' });
    // Every final recipient carries the field of the accepted recipient it was expanded from.
    for (const r of p.recipients) assert.deepEqual(r['futureRecipient'], [1, 2, 3]);
    // And the stages did their own work on top.
    assert.deepEqual(
      p.hops.map((h) => h.stage),
      ['ingress', 'resolver', 'rewriter'],
    );
  }
  await waitUntil('the sink to have all three', () => copiesAtSink(tag).size === 3);
  assert.deepEqual(Object.fromEntries(copiesAtSink(tag)), {
    'alice@a.test': 1,
    'bob@b.test': 1,
    'carol@a.test': 1,
  });
});
