/**
 * Nothing accepted is lost across a graceful restart. Sluice takes a load,
 * is stopped (SIGTERM's code path: stop accepting, finish in-flight work, ack
 * nothing unfinished) while messages are still in every stage, and a new
 * Sluice process picks up from the same JetStream. Every message that got a
 * 250 must reach the destination exactly once; none that was refused may.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { startRuntime } from '@sluice/runtime';
import {
  type DnsServer,
  type NatsTestServer,
  type SmtpSink,
  sendMail,
  startDnsServer,
  startNats,
  startSmtpSink,
  waitForDrainedQueues,
} from '@sluice/test-harness';
import { allServices } from '../../cli/src/services.ts';
import { devNull, ingressPort, queueIdFromReply } from './helpers.ts';

let nats: NatsTestServer;
let sink: SmtpSink;
let dns: DnsServer;

before(async () => {
  nats = await startNats();
  sink = await startSmtpSink({ port: 0 });
  dns = await startDnsServer([]);
});

after(async () => {
  await Promise.all([sink?.stop(), dns?.stop()]);
  await nats?.stop();
});

test('a graceful stop under load loses nothing and delivers nothing twice', async () => {
  const config = parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org' },
      routing: { forwards: { 'alice@example.org': ['alice@example.net'] } },
      transports: { 'example.net': { host: '127.0.0.1', port: sink.port } },
      nats: { servers: [nats.url] },
      ingress: { listen: [{ host: '127.0.0.1', port: 0 }] },
      dns: { servers: [dns.address], timeout: 1 },
      log: { level: 'warn' },
    },
    'restart',
  );
  const first = await startRuntime({ config, services: allServices, logDestination: devNull() });
  const port = ingressPort(first);

  const TOTAL = 60;
  const accepted = new Map<string, string>(); // tag -> queue id
  const refused: string[] = [];
  let next = 0;
  const sender = async () => {
    while (next < TOTAL) {
      const tag = `restart-${next++}`;
      const raw = Buffer.from(
        `From: s@sender.test\r\nTo: alice@example.org\r\nSubject: ${tag}\r\n\r\n${tag}\r\n`,
      );
      try {
        const r = await sendMail({ port, from: 's@sender.test', to: ['alice@example.org'], raw });
        accepted.set(tag, queueIdFromReply(r.response));
      } catch {
        refused.push(tag); // 421 while draining, or connection refused once the port is closed
      }
    }
  };
  const load = Promise.all(Array.from({ length: 6 }, sender));
  // Stop while messages are in flight at every stage.
  await sink.waitFor(() => sink.messages.length >= 5, 30_000);
  await first.stop();
  await load;
  assert.ok(accepted.size >= 5, `some messages were accepted before the stop (${accepted.size})`);
  const deliveredBeforeRestart = sink.messages.length;

  // A new process on the same JetStream finishes what the first one left.
  const second = await startRuntime({ config, services: allServices, logDestination: devNull() });
  try {
    await sink.waitFor(() => sink.messages.length >= accepted.size, 30_000);
    // Give a duplicate, if there were one, the chance to show up: wait until every
    // work queue is empty (nothing left that could still be delivered).
    await waitForDrainedQueues(second.bus);
  } finally {
    await second.stop();
  }
  const subjects = sink.messages.map((m) => /Subject: (restart-\d+)/.exec(m.raw.toString())?.[1]);
  const counts = new Map<string, number>();
  for (const s of subjects) counts.set(s!, (counts.get(s!) ?? 0) + 1);
  for (const [tag] of accepted) assert.equal(counts.get(tag), 1, `${tag} delivered exactly once`);
  for (const tag of refused)
    assert.equal(counts.get(tag), undefined, `${tag} was refused and never delivered`);
  assert.equal(sink.messages.length, accepted.size);
  // The test is only meaningful if the restart had work to finish.
  assert.ok(
    deliveredBeforeRestart < accepted.size || refused.length > 0,
    `the stop interrupted the load (delivered ${deliveredBeforeRestart} of ${accepted.size} before restart)`,
  );
});
