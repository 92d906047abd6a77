/**
 * The egress delivery queue end to end (docs/egress-queue.md, decision 0030):
 * every stage in one process with a real nats-server, real SMTP sinks as the
 * destinations, mail sent in by SMTP, and `sluice queue` run as the CLI runs
 * it (config file, NATS request to a running egress).
 *
 * Scheduling: a black-holed host (accepts TCP, never greets) beside a healthy
 * destination; a per-destination rate; a destination answering 421 backed off
 * for every message queued to it; messages past their lifetime while their
 * destination is backed off still bounce.
 * Operations (a second egress replica sharing the queue): hold then release;
 * retry now; delete (no DSN); bounce (a DSN to the sender); many messages
 * retried at once by two replicas, each delivered once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ledgerKey } from '@sluice/bus';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import { egressService, LEASE_AHEAD_MS, sliceSize } from '@sluice/egress';
import { type Runtime, startRuntime } from '@sluice/runtime';
import {
  type BlackHole,
  type DnsServer,
  type NatsTestServer,
  type SinkMessage,
  type SmtpSink,
  sendMail,
  stageAcks,
  startBlackHole,
  startDnsServer,
  startNats,
  startSmtpSink,
  waitForDrainedQueues,
  waitUntil,
} from '@sluice/test-harness';
import { runQueueCommand } from '../../cli/src/queue-command.ts';
import { allServices } from '../../cli/src/services.ts';
import { devNull, ingressPort, queueCli } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'sluice-queue-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const destinationOf = (port: number) => `[127.0.0.1]:${port}`;

function forwards(names: string[], count: number): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const name of names) {
    for (let i = 0; i < count; i++) out[`${name}${i}@example.org`] = [`${name}${i}@${name}.test`];
  }
  return out;
}

async function send(port: number, to: string): Promise<{ queueId: string; subject: string }> {
  const subject = `queue-test ${randomBytes(6).toString('hex')}`;
  const r = await sendMail({ port, from: 'someone@sender.test', to: [to], subject, text: `for ${to}` });
  const m = /queued as ([0-9A-Z]{10,40})/.exec(r.response);
  assert.ok(m, `accepted: ${r.response}`);
  return { queueId: m[1]!, subject };
}

const dsnAbout = (subject: string) => (m: SinkMessage) =>
  m.mailFrom === '' && m.raw.includes(Buffer.from(subject));

interface Bed {
  nats: NatsTestServer;
  dns: DnsServer;
  rt: Runtime;
  port: number;
  configFile: string;
  config: SluiceConfig;
  senders: SmtpSink;
}

async function startBed(
  name: string,
  settings: Record<string, unknown> & { transports: Record<string, unknown> },
): Promise<Bed> {
  const nats = await startNats();
  const dns = await startDnsServer([{ name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }]);
  const senders = await startSmtpSink();
  const input = {
    hostname: 'mx.example.org',
    domains: { primary: 'example.org' },
    nats: { servers: [nats.url] },
    ingress: { listen: [{ host: '127.0.0.1', port: 0 }] },
    dns: { servers: [dns.address], timeout: 2 },
    log: { level: 'warn' },
    ...settings,
    transports: { ...settings.transports, 'sender.test': { host: '127.0.0.1', port: senders.port } },
  };
  const config = parseConfig(input, name);
  const configFile = join(dir, `${name}.yaml`);
  writeFileSync(configFile, JSON.stringify(input)); // JSON is YAML
  const rt = await startRuntime({
    config,
    services: allServices,
    logDestination: devNull(),
  });
  return { nats, dns, rt, port: ingressPort(rt), configFile, config, senders };
}

async function stopBed(b: Bed | undefined): Promise<void> {
  await b?.rt.stop();
  await Promise.all([b?.senders.stop(), b?.dns.stop()]);
  await b?.nats.stop();
}

describe('scheduling: a slow or dead destination never blocks the others', () => {
  let bed: Bed;
  let hole: BlackHole;
  let ok: SmtpSink;
  let paced: SmtpSink;
  let busy: SmtpSink;
  let slow: SmtpSink;
  let answerSlowly!: () => void;
  const slowAnswer = new Promise<void>((resolve) => {
    answerSlowly = resolve;
  });
  let refusing = true;
  const busyRcpts: number[] = [];
  const LIFETIME = 16;

  before(async () => {
    hole = await startBlackHole();
    ok = await startSmtpSink();
    paced = await startSmtpSink();
    busy = await startSmtpSink({
      failWith: () => {
        busyRcpts.push(Date.now());
        return refusing ? { code: 421, message: '4.7.0 Too many connections, try again later' } : undefined;
      },
    });
    // Takes the whole message, then does not answer the final dot.
    slow = await startSmtpSink({ beforeReply: () => slowAnswer });
    bed = await startBed('e2e-queue-scheduling', {
      routing: { forwards: forwards(['hole', 'ok', 'paced', 'busy', 'slow'], 6) },
      transports: {
        'hole.test': { host: '127.0.0.1', port: hole.port },
        'ok.test': { host: '127.0.0.1', port: ok.port },
        'paced.test': { host: '127.0.0.1', port: paced.port },
        'busy.test': { host: '127.0.0.1', port: busy.port },
        'slow.test': { host: '127.0.0.1', port: slow.port },
      },
      bus: { queueLifetime: LIFETIME },
      egress: {
        concurrency: 4,
        destinationConcurrency: 2,
        retrySchedule: [2],
        connectTimeout: 2,
        greetingTimeout: 4,
        attemptTimeout: 6,
        destinations: [{ match: destinationOf(paced.port), ratePerMinute: 60 }],
      },
    });
  });

  after(async () => {
    await stopBed(bed);
    answerSlowly();
    await Promise.all([hole?.stop(), ok?.stop(), paced?.stop(), busy?.stop(), slow?.stop()]);
  });

  const holeSubjects: string[] = [];
  const postponed = async (reason: string) =>
    (await bed.rt.metrics.egressPostponed.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

  test('a black-holed host beside a healthy one: healthy mail goes at once, the black hole takes at most its concurrency and waits', async () => {
    for (let i = 0; i < 6; i++) holeSubjects.push((await send(bed.port, `hole${i}@example.org`)).subject);
    await waitUntil('the black hole to be tried', () => hole.open > 0);
    for (let i = 0; i < 3; i++) await send(bed.port, `ok${i}@example.org`);
    await ok.waitFor(3, 15_000);
    // Everything healthy arrived while the black hole still held its first connections.
    assert.equal(hole.closed, 0, 'the healthy mail did not wait for the black hole greeting timeout');
    assert.ok(hole.maxOpen <= 2, `at most destinationConcurrency (2) connections, saw ${hole.maxOpen}`);

    // After the greeting timeout the destination is backed off; every message waits with it.
    const destination = destinationOf(hole.port);
    const listed = await waitUntil(
      'the black hole backed off with its 6 messages waiting',
      async () => {
        const { reply } = await queueCli(bed.configFile, ['list']);
        const d = reply?.destinations?.find((x) => x.destination === destination);
        return d?.backoffUntil && d.deferred === 6 ? d : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assert.match(
      listed.backoffReason ?? '',
      /^451 4\.4\.1 \(sluice\) could not open an SMTP session: .*Greeting never received/,
    );
    const { reply } = await queueCli(bed.configFile, ['list', '--destination', destination]);
    assert.equal(reply?.parts?.length, 6);
    for (const p of reply!.parts!) assert.ok(p.nextAttemptAt, 'each waiting part has a next attempt time');

    // It is retried: after the backoff one probe at a time, never all six at once.
    const first = hole.arrivals.length;
    await waitUntil('a retry of the black hole', () => hole.arrivals.length > first, { timeoutMs: 20_000 });
    assert.ok(hole.maxOpen <= 2, `still at most 2 connections at once, saw ${hole.maxOpen}`);
  });

  test('a destination paced at 60 a minute gets one message a second', async () => {
    for (let i = 0; i < 4; i++) await send(bed.port, `paced${i}@example.org`);
    const msgs = await paced.waitFor(4, 20_000);
    const times = msgs.map((m) => m.receivedAt.getTime()).sort((a, b) => a - b);
    // Starts are a second apart; arrivals jitter with each transaction's own time.
    for (let i = 1; i < times.length; i++) {
      const gap = times[i]! - times[i - 1]!;
      assert.ok(gap >= 700, `gap ${gap} ms between deliveries ${i - 1} and ${i}`);
    }
    // Starts are >= 3 s apart in all; the first transaction (a new session) may take longer
    // than the last, so arrivals can span a little less. Unpaced, four arrive within ~100 ms.
    const span = times.at(-1)! - times[0]!;
    assert.ok(span >= 2000, `4 deliveries over ${span} ms`);
    assert.ok((await postponed('paced')) >= 3, 'three waited for their start');
  });

  test('421: the destination is backed off, and mail queued for it meanwhile waits without attempts', async () => {
    await send(bed.port, 'busy0@example.org');
    await waitUntil('the first 421', () => busyRcpts.length >= 1);
    const destination = destinationOf(busy.port);
    const backedOff = await waitUntil('the 421 backoff to be shared', async () => {
      const { reply } = await queueCli(bed.configFile, ['list']);
      return reply?.destinations?.find((x) => x.destination === destination && x.backoffUntil);
    });
    assert.match(backedOff.backoffReason ?? '', /^421 4\.7\.0 Too many connections/);
    for (let i = 1; i < 4; i++) await send(bed.port, `busy${i}@example.org`);
    await waitUntil('all four waiting with the destination', async () => {
      const { reply } = await queueCli(bed.configFile, ['list']);
      return reply?.destinations?.find((x) => x.destination === destination && x.deferred === 4);
    });
    const until = Date.parse(backedOff.backoffUntil!);
    refusing = false;
    const msgs = await busy.waitFor(4, 20_000);
    assert.deepEqual(msgs.map((m) => m.rcptTo[0]).sort(), [
      'busy0@busy.test',
      'busy1@busy.test',
      'busy2@busy.test',
      'busy3@busy.test',
    ]);
    const early = busyRcpts.slice(1).filter((t) => t < until - 50);
    assert.deepEqual(early, [], 'no attempt before the backoff ended');
    assert.ok(
      (await postponed('backoff')) >= 3,
      'the three waited without attempts (sluice_egress_postponed_total)',
    );
    const backoffs = (await bed.rt.metrics.destinationBackoffs.get()).values[0]?.value ?? 0;
    assert.ok(backoffs >= 1, 'sluice_destination_backoffs_total counts it');
  });

  test('a server that never answers the final dot is cut off at egress.attemptTimeout, not socketTimeout', async () => {
    const started = Date.now();
    const { queueId } = await send(bed.port, 'slow0@example.org');
    const cut = await waitUntil(
      'the attempt cut off by its deadline',
      async () =>
        (await bed.rt.bus.readTimeline(queueId)).find(
          (e) => e.kind === 'delivery' && e.outcome === 'deferred',
        ) as { reply: string } | undefined,
      { timeoutMs: 20_000 },
    );
    assert.match(
      cut.reply,
      /^451 4\.4\.2 \(sluice\) delivery attempt timed out: transaction with 127\.0\.0\.1:\d+ after 6 s$/,
    );
    const took = Date.now() - started;
    assert.ok(took < 15_000, `cut after ${took} ms (socketTimeout is 600 s)`);
    answerSlowly();
  });

  test('messages past their lifetime while their destination is backed off still bounce (5.4.7)', async () => {
    for (const subject of holeSubjects) {
      const dsn = await bed.senders.waitFor(dsnAbout(subject), (LIFETIME + 20) * 1000);
      assert.match(dsn.raw.toString(), /^Status: 5\.4\.7$/m);
    }
    await waitForDrainedQueues(bed.rt.bus, 30_000);
    for (const subject of holeSubjects) {
      assert.equal(bed.senders.messages.filter(dsnAbout(subject)).length, 1, 'one DSN per message');
    }
    const { reply } = await queueCli(bed.configFile, ['list']);
    assert.equal(reply?.parts?.length, 0, 'the expired parts left the queue');
  });
});

describe('queue operations, with two egress replicas sharing the queue', () => {
  let bed: Bed;
  let second: Runtime;
  let dest: SmtpSink;
  let pacedDest: SmtpSink;
  let narrow: SmtpSink;
  let inTransaction = 0;
  let mostAtOnce = 0;
  let refusing = true;
  const PACED_RATE = 120; // one start per 500 ms for both replicas together

  before(async () => {
    dest = await startSmtpSink({
      failWith: () => (refusing ? { code: 451, message: '4.7.1 Greylisted, come back later' } : undefined),
    });
    pacedDest = await startSmtpSink();
    // A slow server (each final dot answered after 300 ms), to see how many transactions run at once.
    narrow = await startSmtpSink({
      beforeReply: async () => {
        mostAtOnce = Math.max(mostAtOnce, ++inTransaction);
        await new Promise((r) => setTimeout(r, 300));
        inTransaction--;
      },
    });
    bed = await startBed('e2e-queue-ops', {
      routing: {
        forwards: { ...forwards(['ops'], 20), ...forwards(['shared'], 20), ...forwards(['narrow'], 10) },
      },
      transports: {
        'ops.test': { host: '127.0.0.1', port: dest.port },
        'shared.test': { host: '127.0.0.1', port: pacedDest.port },
        'narrow.test': { host: '127.0.0.1', port: narrow.port },
      },
      // An hour between attempts: nothing here is retried unless an operator asks.
      bus: { maxDeliver: 500 },
      egress: {
        concurrency: 2,
        retrySchedule: [3600],
        destinations: [
          { match: destinationOf(pacedDest.port), ratePerMinute: PACED_RATE },
          { match: destinationOf(narrow.port), maxConcurrency: 2 },
        ],
      },
    });
    second = await startRuntime({
      config: { ...bed.config, instance: 'egress-replica-2' },
      services: [egressService],
      logDestination: devNull(),
    });
  });

  let secondStopped = false;
  after(async () => {
    if (!secondStopped) await second?.stop();
    await stopBed(bed);
    await Promise.all([dest?.stop(), pacedDest?.stop(), narrow?.stop()]);
  });

  /** Send to `to` while the destination refuses, and wait until the part is waiting in the queue. */
  async function deferred(to: string): Promise<{ queueId: string; subject: string }> {
    refusing = true;
    const sent = await send(bed.port, to);
    await waitUntil(`${to} waiting in the queue`, async () => {
      const { reply } = await queueCli(bed.configFile, ['list']);
      return reply?.parts?.find((p) => p.queueId === sent.queueId && p.attempts === 1);
    });
    return sent;
  }

  const ledgerOf = (queueId: string, address: string) => bed.rt.bus.ledgerGet(ledgerKey(queueId, address));

  test('hold, then release: held mail is not retried; released mail is delivered at once', async () => {
    const { queueId } = await deferred('ops0@example.org');
    const held = await queueCli(bed.configFile, ['hold', queueId]);
    assert.equal(held.code, 0, held.err.join(' '));
    const listed = await queueCli(bed.configFile, ['list']);
    assert.equal(listed.reply?.parts?.find((p) => p.queueId === queueId)?.state, 'held');
    refusing = false;
    const retry = await queueCli(bed.configFile, ['retry', queueId]);
    assert.equal(retry.code, 1, 'retry does not release a hold');
    assert.match(retry.reply?.failed?.[0]?.reason ?? '', /held/);
    const released = await queueCli(bed.configFile, ['release', queueId]);
    assert.equal(released.code, 0, released.err.join(' '));
    const msg = await dest.waitFor((m) => m.rcptTo.includes('ops0@ops.test'), 15_000);
    assert.ok(msg);
    await waitUntil('the ledger entry', () => ledgerOf(queueId, 'ops0@ops.test'));
  });

  test('sluice queue --help, and usage mistakes exit 2', async () => {
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
    assert.equal(await runQueueCommand(['--help'], io), 0);
    assert.match(out.join('\n'), /^usage: sluice queue list\|retry\|hold\|release\|delete\|bounce/);
    assert.equal(await runQueueCommand(['retry'], io), 2, 'an action needs an ID or --destination');
    assert.equal(await runQueueCommand(['hold', 'X', '--destination', 'd.test'], io), 2, 'not both');
    assert.equal(await runQueueCommand(['frobnicate'], io), 2);
  });

  test('retry now skips the hour-long wait', async () => {
    const { queueId } = await deferred('ops1@example.org');
    refusing = false;
    const r = await queueCli(bed.configFile, ['retry', queueId]);
    assert.equal(r.code, 0, r.err.join(' '));
    await dest.waitFor((m) => m.rcptTo.includes('ops1@ops.test'), 15_000);
    await waitUntil('the part to leave the queue', async () => {
      const { reply } = await queueCli(bed.configFile, ['list']);
      return reply?.parts?.every((p) => p.queueId !== queueId);
    });
  });

  test('delete removes the message without a DSN; bounce sends the sender a DSN at once', async () => {
    const gone = await deferred('ops2@example.org');
    const back = await deferred('ops3@example.org');
    assert.equal((await queueCli(bed.configFile, ['delete', gone.queueId])).code, 0);
    assert.equal((await queueCli(bed.configFile, ['bounce', back.queueId])).code, 0);

    const dsn = await bed.senders.waitFor(dsnAbout(back.subject), 15_000);
    assert.equal(dsn.rcptTo[0], 'someone@sender.test');
    assert.match(dsn.raw.toString(), /^Status: 5\.0\.0$/m);
    assert.match(dsn.raw.toString(), /returned to the sender by the postmaster/);

    const deleted = await waitUntil('the deleted recipient failed in the ledger', () =>
      ledgerOf(gone.queueId, 'ops2@ops.test'),
    );
    assert.equal(deleted.status, 'failed');
    assert.match(deleted.reply, /deleted from the queue by the postmaster/);
    await waitForDrainedQueues(bed.rt.bus, 30_000);
    assert.equal(bed.senders.messages.filter(dsnAbout(gone.subject)).length, 0, 'no DSN for a delete');
    assert.equal(dest.messages.filter((m) => m.rcptTo.includes('ops2@ops.test')).length, 0);
    assert.equal(dest.messages.filter((m) => m.rcptTo.includes('ops3@ops.test')).length, 0);
    const { reply } = await queueCli(bed.configFile, ['list']);
    assert.equal(reply?.parts?.length, 0);
  });

  test('two replicas: ten deferred messages retried by destination are each delivered once', async () => {
    const addresses = Array.from({ length: 10 }, (_, i) => `ops${i + 10}@example.org`);
    refusing = true;
    const sent = [];
    for (const a of addresses) sent.push(await send(bed.port, a));
    await waitUntil('ten parts waiting', async () => {
      const { reply } = await queueCli(bed.configFile, ['list']);
      return reply?.parts?.filter((p) => p.attempts === 1).length === 10;
    });
    refusing = false;
    const before = dest.messages.length;
    const r = await queueCli(bed.configFile, ['retry', '--destination', destinationOf(dest.port)]);
    assert.equal(r.code, 0, JSON.stringify(r.reply));
    assert.equal(r.reply?.done?.length, 10);
    await dest.waitFor(before + 10, 20_000);
    await waitForDrainedQueues(bed.rt.bus, 30_000);
    for (const a of addresses) {
      const target = a.replace('@example.org', '@ops.test');
      assert.equal(dest.messages.filter((m) => m.rcptTo.includes(target)).length, 1, `${target} once`);
    }
    assert.ok((await stageAcks(bed.rt.metrics, 'egress')) > 0, 'the first replica delivered some');
    assert.ok((await stageAcks(second.metrics, 'egress')) > 0, 'the second replica delivered some');
  });

  test("a rule's maxConcurrency holds across replicas (shares), every message delivered once", async (t) => {
    for (let i = 0; i < 8; i++) await send(bed.port, `narrow${i}@example.org`);
    await narrow.waitFor(8, 30_000);
    await waitForDrainedQueues(bed.rt.bus, 30_000);
    assert.ok(mostAtOnce <= 2, `${mostAtOnce} transactions at once (two replicas, maxConcurrency 2)`);
    t.diagnostic(`maxConcurrency 2, 2 replicas: at most ${mostAtOnce} transactions at once`);
    for (let i = 0; i < 8; i++) {
      const to = `narrow${i}@narrow.test`;
      assert.equal(narrow.messages.filter((m) => m.rcptTo.includes(to)).length, 1, `${to} once`);
    }
  });

  test('a rate holds across replicas (shared leases), and a stopped replica gives its share back', async (t) => {
    const interval = 60_000 / PACED_RATE;
    const slice = sliceSize(interval);
    /** Deliveries (by arrival) never outrun the rate by more than one slice, over any stretch. */
    const withinRate = (times: number[]) => {
      for (let i = 0; i < times.length; i++) {
        for (let j = i + 1; j < times.length; j++) {
          const allowed = (times[j]! - times[i]!) / interval + slice + 1;
          assert.ok(j - i + 1 <= allowed, `${j - i + 1} deliveries in ${times[j]! - times[i]!} ms`);
        }
      }
    };
    const acksBefore = [await stageAcks(bed.rt.metrics, 'egress'), await stageAcks(second.metrics, 'egress')];
    for (let i = 0; i < 12; i++) await send(bed.port, `shared${i}@example.org`);
    // Parts waiting for their start are not in the index: each replica counts them, list adds them up.
    const destination = destinationOf(pacedDest.port);
    const listed = await waitUntil('the paced parts counted as postponed', async () => {
      const { reply } = await queueCli(bed.configFile, ['list']);
      return reply?.destinations?.find((d) => d.destination === destination && (d.postponed ?? 0) >= 2);
    });
    assert.equal(listed.deferred, 0, 'postponed, not deferred: no attempt was made');
    assert.ok(listed.postponedUntil, 'with the latest return time');
    const msgs = await pacedDest.waitFor(12, 30_000);
    const times = msgs.map((m) => m.receivedAt.getTime()).sort((a, b) => a - b);
    withinRate(times);
    // Two replicas each pacing alone would deliver 12 in about 6 intervals; shared, about 11.
    assert.ok(
      times.at(-1)! - times[0]! >= (11 - slice) * interval,
      `12 over ${times.at(-1)! - times[0]!} ms`,
    );
    assert.ok(
      (await stageAcks(bed.rt.metrics, 'egress')) > acksBefore[0]!,
      'the first replica delivered some',
    );
    assert.ok(
      (await stageAcks(second.metrics, 'egress')) > acksBefore[1]!,
      'the second replica delivered some',
    );

    // The second replica goes away holding its leases; they expire by themselves.
    await second.stop();
    secondStopped = true;
    const started = Date.now();
    for (let i = 12; i < 20; i++) await send(bed.port, `shared${i}@example.org`);
    const rest = (await pacedDest.waitFor(20, 30_000)).slice(12);
    const later = rest.map((m) => m.receivedAt.getTime()).sort((a, b) => a - b);
    withinRate(later);
    await waitUntil('nothing postponed once all are delivered', async () => {
      const { reply } = await queueCli(bed.configFile, ['list']);
      return reply?.destinations?.every((d) => d.destination !== destination);
    });
    const took = later.at(-1)! - started;
    t.diagnostic(
      `shared rate ${PACED_RATE}/min, 2 replicas: 12 delivered over ${times.at(-1)! - times[0]!} ms; after one stopped, 8 more in ${took} ms`,
    );
    // The survivor alone: 8 starts at the whole rate, after at most the lease horizon and one slice.
    assert.ok(took <= 7 * interval + LEASE_AHEAD_MS + slice * interval + 3000, `8 more took ${took} ms`);
  });
});
