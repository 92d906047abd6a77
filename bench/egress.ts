/**
 * Egress throughput (`npm run bench:egress`): messages per second the egress
 * service delivers from the deliver stream to 1, 10 and 100 destinations,
 * with session reuse (egress.destinationConcurrency, sessionIdleTimeout),
 * and its CPU per message. Optionally (BENCH_DEAD=1) the same with one more
 * destination whose MX is black-holed (a TEST-NET-1 address: connects hang
 * until egress.connectTimeout), to show what a dead destination costs the
 * healthy ones.
 *
 * Everything is real and on loopback: a nats-server (test harness), the
 * egress service in this process, a DNS server answering MX records for
 * d<i>.bench.test -> mx.d<i>.bench.test -> 127.0.0.1 (distinct host names
 * are distinct destinations to the session pool), and one SMTP sink
 * (smtp-server) as every MX. Parts are published to the deliver stream up
 * front, one recipient each, spread round-robin over the destinations; the
 * clock runs from the first publish to the sink's last message.
 *
 * Knobs (environment): BENCH_MESSAGES (per run, default 2000), BENCH_BYTES
 * (message size, 5120), BENCH_DESTINATIONS ("1,10,100"), BENCH_CONCURRENCY
 * (egress.concurrency, 32), BENCH_DEAD (0). Output: a table on stdout and
 * bench/results/egress-<date>.json. Numbers are for a quiet machine.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@sluice/config';
import { createEgressService } from '@sluice/egress';
import { dedupIds, type Envelope, newQueueId, parseEnvelope, partIdOf, subjects } from '@sluice/proto';
import { startDnsServer, startNats, startServiceContext, startSmtpSink } from '@sluice/test-harness';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const BYTES = Number(process.env.BENCH_BYTES ?? 5120);
const DESTINATIONS = (process.env.BENCH_DESTINATIONS ?? '1,10,100').split(',').map(Number);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const DEAD = process.env.BENCH_DEAD === '1';

interface RunResult {
  destinations: number;
  dead: boolean;
  messages: number;
  seconds: number;
  messagesPerSecond: number;
  cpuMsPerMessage: number;
}

const domainOf = (i: number) => `d${i}.bench.test`;
const body = (i: number) =>
  Buffer.from(
    `From: bench@sender.test\r\nTo: user@x\r\nSubject: egress bench ${i}\r\nMessage-ID: <${i}.${Date.now()}@bench>\r\n\r\n${'x'.repeat(Math.max(0, BYTES - 120))}\r\n`,
  );

async function run(destinations: number, dead: boolean): Promise<RunResult> {
  const nats = await startNats();
  const sink = await startSmtpSink();
  const domains = Array.from({ length: destinations }, (_, i) => domainOf(i));
  const records = domains.flatMap((d) => [
    { name: d, type: 'MX' as const, data: { preference: 10, exchange: `mx.${d}` } },
    { name: `mx.${d}`, type: 'A' as const, data: '127.0.0.1' },
  ]);
  // TEST-NET-1 (RFC 5737): nothing answers there, so a connect waits for egress.connectTimeout.
  if (dead) {
    records.push(
      { name: 'dead.bench.test', type: 'MX', data: { preference: 10, exchange: 'mx.dead.bench.test' } },
      { name: 'mx.dead.bench.test', type: 'A', data: '192.0.2.1' },
    );
  }
  const dns = await startDnsServer(records);
  const config = parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org' },
      nats: { servers: [nats.url] },
      egress: { concurrency: CONCURRENCY, connectTimeout: 5 },
      dns: { servers: [dns.address], timeout: 2 },
      log: { level: 'error' },
    },
    'bench-egress',
  );
  const started = await startServiceContext(config, 'bench-egress');
  const egress = await createEgressService({ mxPort: sink.port }).start(started.ctx);
  try {
    // Prepare every part first (bodies stored), so the clock measures delivery only.
    const parts: Array<{ envelope: Envelope; inline?: Uint8Array }> = [];
    const targets = dead ? [...domains, 'dead.bench.test'] : domains;
    for (let i = 0; i < MESSAGES; i++) {
      const domain = targets[i % targets.length]!;
      const id = newQueueId();
      const stored = await started.bus.storeBody(id, body(i));
      const rcpt = `user${i}@${domain}`;
      const envelope = parseEnvelope({
        v: 1,
        id,
        partId: partIdOf(id, `mx:${domain}`, [rcpt]),
        receivedAt: new Date().toISOString(),
        source: 'mx',
        receivedBy: 'mx.example.org',
        client: { ip: '192.0.2.10', helo: 'client.test' },
        mailFrom: { address: 'bench@sender.test' },
        recipients: [{ address: rcpt, original: rcpt }],
        route: { kind: 'mx', domain },
        body: stored.ref,
        prepend: [],
      });
      parts.push({ envelope, inline: stored.inline });
    }
    const healthy = parts.filter(
      (p) => p.envelope.route?.kind === 'mx' && p.envelope.route.domain !== 'dead.bench.test',
    ).length;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (const p of parts) {
      await started.bus.publishEnvelope(subjects.deliver, p.envelope, p.inline, {
        msgId: dedupIds.deliver(p.envelope.partId!),
      });
    }
    await sink.waitFor(healthy, 600_000);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return {
      destinations,
      dead,
      messages: healthy,
      seconds,
      messagesPerSecond: healthy / seconds,
      cpuMsPerMessage: (cpu.user + cpu.system) / 1000 / healthy,
    };
  } finally {
    await egress.stop();
    await started.bus.close();
    await sink.stop();
    await dns.stop();
    await nats.stop();
  }
}

const results: RunResult[] = [];
for (const n of DESTINATIONS) {
  results.push(await run(n, false));
  if (DEAD) results.push(await run(n, true));
}
console.log('destinations  dead  messages  seconds  msg/s   CPU ms/msg (this process: egress + publisher)');
for (const r of results) {
  console.log(
    `${String(r.destinations).padStart(12)}  ${(r.dead ? 'yes' : 'no').padEnd(4)}  ${String(r.messages).padStart(8)}  ${r.seconds.toFixed(2).padStart(7)}  ${r.messagesPerSecond.toFixed(0).padStart(5)}  ${r.cpuMsPerMessage.toFixed(2).padStart(10)}`,
  );
}
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `egress-${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(
  file,
  `${JSON.stringify({ at: new Date().toISOString(), cpus: cpus().length, load: loadavg(), messages: MESSAGES, bytes: BYTES, concurrency: CONCURRENCY, results }, null, 2)}\n`,
);
console.log(`written: ${file}`);
process.exit(0);
