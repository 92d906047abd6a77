/**
 * A crash loses nothing. A `sluice run` process is killed with SIGKILL in the
 * middle of a load (no drain, no acks, sessions cut), a new one is started on
 * the same JetStream, and every message that got a 250 must reach the
 * destination. A duplicate is possible in exactly one window — the egress got
 * the remote 250 but died before writing its ledger — so duplicates are
 * counted, reported, and bounded by the deliveries that can be in flight.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Bus, busConfigFrom } from '@sluice/bus';
import { parseConfig } from '@sluice/config';
import { sendMail, waitForDrainedQueues } from '@sluice/test-harness';
import { queueIdFromReply, startSluiceProcess } from './helpers.ts';
import { type ProcessBed, startProcessBed } from './process-bed.ts';

const EGRESS_CONCURRENCY = 8;
let bed: ProcessBed;

before(async () => {
  // A slow destination (200 ms per delivery, 2 sessions: see the egress config below) keeps a
  // backlog queued when the kill lands; without it the pipeline keeps up with the MX and can be
  // empty by then.
  bed = await startProcessBed('crash', {
    sink: { beforeReply: () => new Promise((resolve) => setTimeout(resolve, 200)) },
  });
});

after(() => bed?.stop());

test('SIGKILL mid-load: every accepted message is delivered after a restart', async (t) => {
  const { nats, sink, procs } = bed;
  const { configFile, smtpPort } = await bed.writeConfig({
    extraYaml: `egress: { concurrency: ${EGRESS_CONCURRENCY}, destinationConcurrency: 2 }
bus: { ackWait: 2 }
log: { level: info }
`,
  });
  procs.push(await startSluiceProcess(['--config', configFile]));

  const TOTAL = 80;
  const accepted = new Set<string>();
  const unanswered = new Set<string>();
  let next = 0;
  const sender = async () => {
    while (next < TOTAL) {
      const tag = `crash-${next++}`;
      const raw = Buffer.from(`From: s@sender.test\r\nSubject: ${tag}\r\n\r\n${tag}\r\n`);
      try {
        const r = await sendMail({ port: smtpPort, from: 's@sender.test', to: ['alice@example.org'], raw });
        queueIdFromReply(r.response);
        accepted.add(tag);
      } catch {
        // The process died before answering: the client does not know, and would retry.
        unanswered.add(tag);
      }
    }
  };
  const load = Promise.all(Array.from({ length: 6 }, sender));
  // The kill is triggered by an arrival at the sink, so it lands right after a remote 250 and
  // before the egress can write its ledger: the worst case, on purpose — typically 1 or 2 duplicates.
  await sink.waitFor(() => sink.messages.length >= 10, 30_000);
  procs[0]!.child.kill('SIGKILL');
  await procs[0]!.exited;
  await load;
  const deliveredAtCrash = sink.messages.length;

  procs.push(await startSluiceProcess(['--config', configFile]));
  const tagsOf = () => sink.messages.map((m) => /Subject: (crash-\d+)/.exec(m.raw.toString())![1]!);
  await sink.waitFor(() => [...accepted].every((tag) => tagsOf().includes(tag)), 60_000);
  // Nothing left queued that could still arrive.
  const probe = await Bus.connect(
    busConfigFrom(
      parseConfig({ domains: { primary: 'example.org' }, nats: { servers: [nats.url] } }, 'probe'),
      'probe',
    ),
  );
  try {
    await waitForDrainedQueues(probe, 30_000);
  } finally {
    await probe.close();
  }
  procs[1]!.child.kill('SIGTERM');
  assert.equal(await procs[1]!.exited, 0);

  const counts = new Map<string, number>();
  for (const tag of tagsOf()) counts.set(tag, (counts.get(tag) ?? 0) + 1);
  for (const tag of accepted) assert.ok((counts.get(tag) ?? 0) >= 1, `${tag} got 250 and was delivered`);
  for (const tag of counts.keys()) {
    assert.ok(accepted.has(tag) || unanswered.has(tag), `${tag} delivered but never sent`);
  }
  const duplicates = [...counts.values()].reduce((n, c) => n + (c - 1), 0);
  t.diagnostic(
    `accepted ${accepted.size}, unanswered at the crash ${unanswered.size}, delivered before the crash ${deliveredAtCrash}, ` +
      `delivered in all ${sink.messages.length}, duplicates ${duplicates} (remote 250 before the ledger write)`,
  );
  assert.ok(deliveredAtCrash < accepted.size, 'the crash interrupted the work');
  assert.ok(duplicates <= EGRESS_CONCURRENCY, `duplicates (${duplicates}) bounded by deliveries in flight`);
});
