/**
 * Foundation benchmark (`npm run bench`): how fast one message crosses the
 * whole pipeline and how many small messages per second it carries, on this
 * machine, in one run. Everything is real and on loopback: nats-server
 * (JetStream, file store), every Sluice service in one process as `sluice run`
 * starts them, the filter asking a loopback DNS server, an SMTP sink as the
 * destination. As a side-by-side baseline, the same load generator sends the
 * same messages straight to the sink (no Sluice): the ratio says what the
 * pipeline costs, independent of how noisy the machine is today.
 *
 * Output: a summary on stdout and bench/results/foundation-<date>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseConfig } from '@sluice/config';
import { startRuntime } from '@sluice/runtime';
import { sendMail, startDnsServer, startNats, startSmtpSink } from '@sluice/test-harness';
import { allServices } from '../cli/src/services.ts';

const SMALL = 2_000; // bytes of body
const COUNT = Number(process.env.BENCH_COUNT ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 20);
const LATENCY_SAMPLES = 30;

function messageOf(i: number, tag: string): Buffer {
  const body = `${'x'.repeat(72)}\r\n`.repeat(Math.ceil(SMALL / 74));
  return Buffer.from(
    `From: bench@sender.test\r\nTo: alice@example.org\r\nSubject: ${tag} ${i}\r\nMessage-ID: <${tag}.${i}@sender.test>\r\n\r\n${body}`,
  );
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function drive(port: number, tag: string, count: number, concurrency: number) {
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await sendMail({ port, from: 'bench@sender.test', to: ['alice@example.org'], raw: messageOf(i, tag) });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return performance.now() - t0;
}

const nats = await startNats();
const sink = await startSmtpSink({ port: 0 });
const dns = await startDnsServer([{ name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }]);
const config = parseConfig(
  {
    hostname: 'mx.example.org',
    domains: { primary: 'example.org' },
    routing: { forwards: { 'alice@example.org': ['alice@example.net'] } },
    transports: { 'example.net': { host: '127.0.0.1', port: sink.port } },
    nats: { servers: [nats.url] },
    ingress: { listen: [{ host: '127.0.0.1', port: 0 }] },
    dns: { servers: [dns.address], timeout: 2 },
    log: { level: 'warn' },
  },
  'bench',
);
const rt = await startRuntime({
  config,
  services: allServices,
  logDestination: new Writable({ write: (_c, _e, cb) => cb() }),
});
const port = (rt.service('ingress')!.info!() as { ports: number[] }).ports[0]!;

try {
  // Warm up JIT, connections, consumers.
  await drive(port, 'warmup', 50, 5);
  await sink.waitFor((m) => m.raw.includes(Buffer.from('warmup 49')), 30_000);

  // 1. Latency of one message at a time: SMTP start -> arrival at the sink, and 250 -> arrival.
  const total: number[] = [];
  const afterAccept: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const marker = Buffer.from(`latency ${i}\r\n`);
    const t0 = performance.now();
    await sendMail({
      port,
      from: 'bench@sender.test',
      to: ['alice@example.org'],
      raw: messageOf(i, 'latency'),
    });
    const t1 = performance.now();
    await sink.waitFor((m) => m.raw.includes(marker), 10_000);
    const t2 = performance.now();
    total.push(t2 - t0);
    afterAccept.push(t2 - t1);
  }

  // 2. Throughput: COUNT small messages over CONCURRENCY connections, through Sluice.
  const before = sink.messages.length;
  const cpu0 = process.cpuUsage();
  const tStart = performance.now();
  const acceptMs = await drive(port, 'load', COUNT, CONCURRENCY);
  await sink.waitFor(() => sink.messages.length - before >= COUNT, 120_000);
  const deliverMs = performance.now() - tStart;
  const cpu = process.cpuUsage(cpu0);

  // 3. Baseline, same run: the same load straight to the sink (no Sluice).
  const directBefore = sink.messages.length;
  const directMs = await drive(sink.port, 'direct', COUNT, CONCURRENCY);
  await sink.waitFor(() => sink.messages.length - directBefore >= COUNT, 60_000);

  const result = {
    date: new Date().toISOString(),
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    nats: 'nats-server (harness), single node, file store',
    message: { bodyBytes: SMALL, recipients: 1 },
    latencyMs: {
      smtpStartToDelivered: { p50: percentile(total, 50), p99: percentile(total, 99) },
      acceptToDelivered: { p50: percentile(afterAccept, 50), p99: percentile(afterAccept, 99) },
      samples: LATENCY_SAMPLES,
    },
    throughput: {
      messages: COUNT,
      concurrency: CONCURRENCY,
      acceptedPerSecond: (COUNT / acceptMs) * 1000,
      deliveredPerSecond: (COUNT / deliverMs) * 1000,
      directToSinkPerSecond: (COUNT / directMs) * 1000,
      sluiceOverDirectRatio: directMs / deliverMs,
      cpuSecondsPer1000: ((cpu.user + cpu.system) / 1e6) * (1000 / COUNT),
      peakRssMB: process.resourceUsage().maxRSS / 1024,
      note: 'CPU and RSS include the load generator and the sink, which run in the same process',
    },
  };
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `foundation-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  const f = (n: number) => n.toFixed(1);
  process.stdout.write(
    [
      `one message, SMTP start -> delivered: p50 ${f(result.latencyMs.smtpStartToDelivered.p50)} ms, p99 ${f(result.latencyMs.smtpStartToDelivered.p99)} ms`,
      `one message, 250 -> delivered:        p50 ${f(result.latencyMs.acceptToDelivered.p50)} ms, p99 ${f(result.latencyMs.acceptToDelivered.p99)} ms`,
      `${COUNT} messages x ${CONCURRENCY} connections: accepted ${f(result.throughput.acceptedPerSecond)}/s, delivered ${f(result.throughput.deliveredPerSecond)}/s`,
      `same load straight to the sink: ${f(result.throughput.directToSinkPerSecond)}/s (Sluice/direct = ${result.throughput.sluiceOverDirectRatio.toFixed(2)})`,
      `CPU ${result.throughput.cpuSecondsPer1000.toFixed(2)} s per 1000 messages, peak RSS ${f(result.throughput.peakRssMB)} MB`,
      `written to ${file}`,
    ].join('\n') + '\n',
  );
} finally {
  await rt.stop();
  await sink.stop();
  await dns.stop();
  await nats.stop();
}
