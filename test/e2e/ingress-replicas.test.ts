/**
 * Two MX replicas on one NATS (issue 10): two Sluice instances (as two pods),
 * each with its own ingress port, sharing the streams and KV. Clients talk to
 * both at once, several connections each; every message must reach the sink
 * exactly once and unaltered (count and SHA-256 of what was sent, found as
 * the tail of what arrived after our prepended headers).
 *
 * The concurrent-connection limits (ingress.limits.perIp / perNet) are
 * counted per replica, as docs/ingress.md says: a client holds perIp
 * sessions on each replica, and the one it filled refuses it while the
 * other still serves it.
 *
 * Drain under load: replica a is stopped (SIGTERM's path) while clients send
 * to both; sessions in flight finish, new ones are refused and the clients
 * go to b, as MTAs retry; every message that got a 250 arrives exactly once.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { type Runtime, startRuntime } from '@sluice/runtime';
import {
  type DnsServer,
  type NatsTestServer,
  type SmtpSink,
  sendMail,
  smtpConversation,
  startDnsServer,
  startNats,
  startSmtpSink,
  waitUntil,
} from '@sluice/test-harness';
import { allServices } from '../../cli/src/services.ts';
import { devNull, ingressPort } from './helpers.ts';

/** Concurrent sessions per client IP, per replica: the 10 clients of the load test stay under it. */
const PER_IP = 12;
let nats: NatsTestServer;
let sink: SmtpSink;
let dns: DnsServer;
const replicas: Runtime[] = [];

before(async () => {
  nats = await startNats();
  sink = await startSmtpSink({ port: 0 });
  dns = await startDnsServer([{ name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }]);
  for (const name of ['a', 'b']) {
    const config = parseConfig(
      {
        hostname: 'mx.example.org',
        instance: `mx-${name}`,
        domains: { primary: 'example.org' },
        routing: { forwards: { 'alice@example.org': ['alice@example.net'] } },
        transports: { 'example.net': { host: '127.0.0.1', port: sink.port } },
        nats: { servers: [nats.url] },
        // A stopped replica can leave a message its stages had pulled but not started: JetStream
        // hands it to the other replica after ackWait (default 60 s). 20 s keeps the drain test short.
        bus: { ackWait: 20 },
        ingress: { listen: [{ host: '127.0.0.1', port: 0 }], limits: { perIp: PER_IP } },
        dns: { servers: [dns.address], timeout: 2 },
        log: { level: 'warn' },
      },
      `replica-${name}`,
    );
    replicas.push(await startRuntime({ config, services: allServices, logDestination: devNull() }));
  }
});

after(async () => {
  for (const rt of replicas) await rt.stop();
  await Promise.all([sink?.stop(), dns?.stop()]);
  await nats?.stop();
});

function message(tag: string): Buffer {
  // Bodies of different sizes, a few over 64 KiB (several socket reads per DATA).
  const filler = randomBytes(Number.parseInt(tag.slice(-2), 16) * 300 + 100).toString('base64');
  const lines = filler.match(/.{1,76}/g) ?? [];
  return Buffer.from(
    [
      'From: s@sender.test',
      'To: alice@example.org',
      `Subject: ${tag}`,
      `Message-ID: <${tag}@sender.test>`,
      '',
      ...lines,
      '',
    ].join('\r\n'),
  );
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('two ingress replicas on one NATS', () => {
  test('2 x 50 messages from 10 concurrent clients per replica: each delivered exactly once, unaltered', async () => {
    const run = randomBytes(3).toString('hex');
    const sent = new Map<string, string>(); // subject -> sha256 of what was sent
    const ports = replicas.map(ingressPort);
    assert.notEqual(ports[0], ports[1]);
    const client = async (port: number, r: number, c: number) => {
      for (let i = 0; i < 5; i++) {
        const tag = `rep-${run}-${r}-${c}-${i}-${randomBytes(1).toString('hex')}`;
        const raw = message(tag);
        sent.set(tag, sha256(raw));
        const res = await sendMail({ port, from: 's@sender.test', to: ['alice@example.org'], raw });
        assert.match(res.response, /^250 2\.0\.0 Ok: queued as /);
      }
    };
    await Promise.all(ports.flatMap((port, r) => Array.from({ length: 10 }, (_, c) => client(port, r, c))));
    assert.equal(sent.size, 100);

    const ours = () => sink.messages.filter((m) => m.raw.includes(`Subject: rep-${run}-`));
    await sink.waitFor(() => ours().length >= 100, 60_000);
    const seen = new Map<string, number>();
    for (const m of ours()) {
      const tag = /Subject: (rep-\S+)\r\n/.exec(m.raw.toString('latin1'))![1]!;
      seen.set(tag, (seen.get(tag) ?? 0) + 1);
      // What was sent is what follows the header fields we prepended (the first line of the original).
      const original = m.raw.subarray(m.raw.indexOf(Buffer.from('\r\nFrom: s@sender.test\r\n')) + 2);
      assert.equal(sha256(original), sent.get(tag), `${tag} arrived altered`);
    }
    assert.equal(seen.size, 100, 'every message arrived');
    assert.ok(
      [...seen.values()].every((n) => n === 1),
      `duplicates: ${JSON.stringify([...seen].filter(([, n]) => n > 1))}`,
    );
    // Both replicas took their share at the MX.
    for (const rt of replicas) {
      const received = await rt.metrics.registry.getSingleMetricAsString('sluice_messages_received_total');
      assert.match(received, /source="mx"\} ([5-9]\d|\d{3,})/, `${rt.instance}: ${received}`);
    }
  });

  test('concurrent-session limits are per replica: a client holding perIp on one is still served by the other', async () => {
    const [a, b] = replicas.map(ingressPort) as [number, number];
    // Hold PER_IP sessions on replica a (each waits for its release after the greeting).
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const greeted: Promise<void>[] = [];
    const held = Array.from({ length: PER_IP }, () => {
      let greet!: () => void;
      greeted.push(new Promise((r) => (greet = r)));
      return smtpConversation(a, [{ action: () => greet() }, { action: () => released }, 'QUIT']);
    });
    await Promise.all(greeted);
    const refused = await smtpConversation(a, []);
    assert.match(refused[0]!, /^421 mx\.example\.org 4\.7\.0 Too many connections from your address/);
    const other = await smtpConversation(b, ['QUIT']);
    assert.match(other[0]!, /^220 /);
    release();
    await Promise.all(held);
    await waitUntil('a slot on replica a again', async () =>
      (await smtpConversation(a, ['QUIT']))[0]!.startsWith('220 '),
    );
  });

  // Last: it stops replica a.
  test('drain under load: replica a stops while 10 clients send; every message answered 250 arrives once', async () => {
    const run = randomBytes(3).toString('hex');
    const [a, b] = replicas.map(ingressPort) as [number, number];
    let aRefuses = false;
    const accepted = new Map<string, string>(); // subject -> sha256, for each message that got 250
    let refusedByA = 0;
    const client = async (c: number) => {
      for (let i = 0; i < 6; i++) {
        const tag = `drain-${run}-${c}-${i}`;
        const raw = message(`${tag}-${randomBytes(1).toString('hex')}`);
        for (let attempt = 1; ; attempt++) {
          // Half the clients start on a; once a refuses (421 or closed port), everyone uses b.
          const port = !aRefuses && c % 2 === 0 ? a : b;
          try {
            const res = await sendMail({ port, from: 's@sender.test', to: ['alice@example.org'], raw });
            assert.match(res.response, /^250 /);
            accepted.set(/Subject: (\S+)/.exec(raw.toString())![1]!, sha256(raw));
            break;
          } catch (err) {
            // A 4xx or a closed port is "try again" to an MTA: the next attempt goes to b.
            if (port !== a || attempt > 3) throw err;
            aRefuses = true;
            refusedByA++;
          }
        }
      }
    };
    const load = Promise.all(Array.from({ length: 10 }, (_, c) => client(c)));
    await waitUntil('the load is under way', () => accepted.size >= 8);
    await replicas[0]!.stop();
    await load;
    assert.equal(accepted.size, 60, 'every message was accepted by one of the replicas');
    assert.ok(refusedByA > 0, 'replica a refused new sessions once it drained');

    const ours = () => sink.messages.filter((m) => m.raw.includes(`Subject: drain-${run}-`));
    // Up to ackWait (20 s) more for a message replica a's stages had pulled when it stopped.
    await sink.waitFor(() => ours().length >= 60, 90_000);
    const seen = new Map<string, number>();
    for (const m of ours()) {
      const tag = /Subject: (drain-\S+)\r\n/.exec(m.raw.toString('latin1'))![1]!;
      seen.set(tag, (seen.get(tag) ?? 0) + 1);
      const original = m.raw.subarray(m.raw.indexOf(Buffer.from('\r\nFrom: s@sender.test\r\n')) + 2);
      assert.equal(sha256(original), accepted.get(tag), `${tag} arrived altered`);
    }
    assert.equal(seen.size, 60);
    assert.ok(
      [...seen.values()].every((n) => n === 1),
      'no duplicates',
    );
  });
});
