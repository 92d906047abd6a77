/**
 * One service per process, the Kubernetes way: `sluice run ingress filter`,
 * `sluice run resolver rewriter` and the egress from its own main.ts
 * (`node services/egress/src/main.ts`), each a separate process sharing one
 * NATS. A message crosses all three processes, its stages still form one
 * trace, and every process stops cleanly on SIGTERM.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sendMail, startNodeProcess, waitUntil } from '@sluice/test-harness';
import { queueIdFromReply, type SluiceProcess, startSluiceProcess } from './helpers.ts';
import { type ProcessBed, startProcessBed } from './process-bed.ts';

let bed: ProcessBed;

before(async () => {
  bed = await startProcessBed('split');
});

after(() => bed?.stop());

/** A service's own main.ts, started the way a container would start it. */
function startServiceMain(service: string, configFile: string): Promise<SluiceProcess> {
  const main = join(import.meta.dirname, '..', '..', 'services', service, 'src', 'main.ts');
  return startNodeProcess([main, '--config', configFile]);
}

test('ingress+filter, resolver+rewriter and egress in three processes carry a message', async () => {
  const { sink, procs } = bed;
  const { configFile, smtpPort } = await bed.writeConfig({
    aliases: { 'team@example.org': ['alice@example.org'] },
  });
  procs.push(await startServiceMain('egress', configFile));
  procs.push(await startSluiceProcess(['resolver', 'rewriter', '--config', configFile]));
  procs.push(await startSluiceProcess(['ingress', 'filter', '--config', configFile]));

  const r = await sendMail({
    port: smtpPort,
    from: 's@sender.test',
    to: ['team@example.org'],
    raw: Buffer.from('From: s@sender.test\r\nSubject: across processes\r\n\r\nhello\r\n'),
  });
  const queueId = queueIdFromReply(r.response);
  const got = await sink.waitFor((m) => m.raw.includes(Buffer.from('across processes')), 20_000);
  assert.deepEqual(got.rcptTo, ['alice@example.net']);

  // Each process logged its own part of the message, all under the same trace id.
  const linesAbout = (p: SluiceProcess) =>
    p
      .stdout()
      .split('\n')
      .filter((l) => l.includes(queueId));
  // The egress logs after the sink has the message.
  await waitUntil(
    `every process to log about ${queueId}`,
    () => procs.every((p) => linesAbout(p).length > 0),
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  const traceIds = new Set<string>();
  for (const p of procs) {
    for (const l of linesAbout(p)) traceIds.add((JSON.parse(l) as { trace_id: string }).trace_id);
  }
  assert.equal(traceIds.size, 1, `one trace across processes: ${[...traceIds].join(', ')}`);

  for (const p of [...procs].reverse()) p.child.kill('SIGTERM');
  for (const p of procs) assert.equal(await p.exited, 0, p.stderr());
});
