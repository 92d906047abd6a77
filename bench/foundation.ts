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
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bus, busConfigFrom } from '@sluice/bus';
import { parseConfig } from '@sluice/config';
import {
  freePort,
  sendMail,
  startDnsServer,
  startNats,
  startSluiceProcess,
  startSmtpSink,
  waitUntil,
  writeSluiceConfig,
} from '@sluice/test-harness';
import { createTransport } from 'nodemailer';

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

/** Send `count` messages over `concurrency` parallel senders; one new connection per message, or reused connections. */
async function drive(port: number, tag: string, count: number, concurrency: number, reuse = false) {
  const pool = reuse
    ? createTransport({
        host: '127.0.0.1',
        port,
        pool: true,
        maxConnections: concurrency,
        maxMessages: Number.POSITIVE_INFINITY,
        ignoreTLS: true,
      })
    : undefined;
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const envelope = { from: 'bench@sender.test', to: ['alice@example.org'] };
      if (pool) await pool.sendMail({ envelope, raw: messageOf(i, tag) });
      else await sendMail({ port, ...envelope, raw: messageOf(i, tag) });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  pool?.close();
  return performance.now() - t0;
}

/** Drive a load through `port` and wait until the sink has all of it; returns ms to accept and ms to deliver. */
async function measure(port: number, tag: string, reuse: boolean) {
  const before = sink.messages.length;
  const t0 = performance.now();
  const acceptMs = await drive(port, tag, COUNT, CONCURRENCY, reuse);
  await sink.waitFor(() => sink.messages.length - before >= COUNT, 180_000);
  return { acceptMs, deliverMs: performance.now() - t0 };
}

const nats = await startNats();
const sink = await startSmtpSink({ port: 0 });
const dns = await startDnsServer([{ name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }]);
const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
const configFile = join(dir, 'sluice.yaml');
writeSluiceConfig(configFile, {
  natsUrl: nats.url,
  smtpPort: port,
  sinkPort: sink.port,
  dnsServers: [dns.address],
  dnsTimeout: 2,
  extraYaml: 'log: { level: info }\n',
});
// Sluice runs in its own process, as `sluice run` (all services, production log level), so its
// CPU and memory are its own; BENCH_PROFILE=1 writes a V8 CPU profile to bench/results/profile/.
const profileDir = join(import.meta.dirname, 'results', 'profile');
const sluice = await startSluiceProcess(['--config', configFile], {
  nodeArgs: process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
});
sluice.child.stdout!.removeAllListeners('data'); // the logs are not kept: a long run would pile them up
sluice.child.stdout!.resume();

/** p50 of (event time - 'received' time) per event kind over the timelines of `ids`, in ms. */
async function timelineOffsets(ids: string[]): Promise<Record<string, number>> {
  const bus = await Bus.connect(
    busConfigFrom(
      parseConfig({ domains: { primary: 'example.org' }, nats: { servers: [nats.url] } }, 'bench'),
      'bench',
    ),
  );
  try {
    const offsets = new Map<string, number[]>();
    for (const id of ids) {
      const events = await waitUntil(`timeline of ${id}`, async () => {
        const ev = await bus.readTimeline(id);
        return ev.some((e) => e.kind === 'delivery') ? ev : undefined;
      });
      const t0 = Date.parse(events.find((e) => e.kind === 'received')!.at);
      for (const e of events) {
        const list = offsets.get(e.kind) ?? [];
        list.push(Date.parse(e.at) - t0);
        offsets.set(e.kind, list);
      }
    }
    return Object.fromEntries([...offsets].map(([kind, xs]) => [kind, percentile(xs, 50)]));
  } finally {
    await bus.close();
  }
}

/** CPU seconds (user + system) and peak RSS of a process, from /proc. */
function usageOf(pid: number): { cpuSeconds: number; peakRssMB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds: ticks / 100, peakRssMB: Number(hwm?.[1] ?? 0) / 1024 };
}

try {
  // Warm up JIT, connections, consumers.
  await drive(port, 'warmup', 50, 5);
  await sink.waitFor((m) => m.raw.includes(Buffer.from('warmup 49')), 30_000);

  // 1. Latency of one message at a time: SMTP start -> arrival at the sink, and 250 -> arrival.
  const total: number[] = [];
  const afterAccept: number[] = [];
  const sampleIds: string[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const marker = Buffer.from(`latency ${i}\r\n`);
    const t0 = performance.now();
    const reply = await sendMail({
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
    sampleIds.push(/queued as ([0-9A-Z]+)/.exec(reply.response)![1]!);
  }
  // Where the time goes: when each stage recorded its decision, from each sample's timeline.
  const stageOffsets = await timelineOffsets(sampleIds);

  // 2. Throughput: COUNT small messages over CONCURRENCY senders through Sluice, then the same load
  //    straight to the sink (no Sluice) as the baseline of the same run. Two client behaviours:
  //    one new SMTP connection per message (typical MX traffic), and reused connections.
  const cpu0 = usageOf(sluice.child.pid!).cpuSeconds;
  const natsCpu0 = usageOf(nats.nodes[0]!.server.pid).cpuSeconds;
  const perConnection = await measure(port, 'load', false);
  const cpuSeconds = usageOf(sluice.child.pid!).cpuSeconds - cpu0;
  const natsCpuSeconds = usageOf(nats.nodes[0]!.server.pid).cpuSeconds - natsCpu0;
  const perConnectionDirect = await measure(sink.port, 'direct', false);
  const reused = await measure(port, 'pooled', true);
  const reusedDirect = await measure(sink.port, 'pooled-direct', true);
  const rate = (ms: number) => (COUNT / ms) * 1000;

  const result = {
    date: new Date().toISOString(),
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    nats: 'nats-server (harness), single node, file store',
    sluice: 'sluice run (all services in one process), separate from the load generator and sink',
    message: { bodyBytes: SMALL, recipients: 1 },
    latencyMs: {
      smtpStartToDelivered: { p50: percentile(total, 50), p99: percentile(total, 99) },
      acceptToDelivered: { p50: percentile(afterAccept, 50), p99: percentile(afterAccept, 99) },
      samples: LATENCY_SAMPLES,
      stageRecordedAfterReceivedP50: stageOffsets,
    },
    throughput: {
      messages: COUNT,
      concurrency: CONCURRENCY,
      newConnectionPerMessage: {
        acceptedPerSecond: rate(perConnection.acceptMs),
        deliveredPerSecond: rate(perConnection.deliverMs),
        directToSinkPerSecond: rate(perConnectionDirect.deliverMs),
        sluiceOverDirectRatio: perConnectionDirect.deliverMs / perConnection.deliverMs,
      },
      reusedConnections: {
        acceptedPerSecond: rate(reused.acceptMs),
        deliveredPerSecond: rate(reused.deliverMs),
        directToSinkPerSecond: rate(reusedDirect.deliverMs),
        sluiceOverDirectRatio: reusedDirect.deliverMs / reused.deliverMs,
      },
      sluiceCpuSecondsPer1000: cpuSeconds * (1000 / COUNT),
      natsServerCpuSecondsPer1000: natsCpuSeconds * (1000 / COUNT),
      sluicePeakRssMB: usageOf(sluice.child.pid!).peakRssMB,
      note:
        'Sluice (all services) in one process at log level info; CPU measured over the new-connection run; ' +
        'smtp-server waits 100 ms before its greeting (early-talker check), at our ingress and at the sink, on every new connection',
    },
  };
  const resultsDir = join(import.meta.dirname, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `foundation-${result.date.slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  const f = (n: number) => n.toFixed(1);
  process.stdout.write(
    [
      `one message, SMTP start -> delivered: p50 ${f(result.latencyMs.smtpStartToDelivered.p50)} ms, p99 ${f(result.latencyMs.smtpStartToDelivered.p99)} ms`,
      `  stages, p50 ms after 'received': ${Object.entries(result.latencyMs.stageRecordedAfterReceivedP50)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
      `one message, 250 -> delivered:        p50 ${f(result.latencyMs.acceptToDelivered.p50)} ms, p99 ${f(result.latencyMs.acceptToDelivered.p99)} ms`,
      `${COUNT} messages, ${CONCURRENCY} senders, new connection per message: accepted ${f(result.throughput.newConnectionPerMessage.acceptedPerSecond)}/s, delivered ${f(result.throughput.newConnectionPerMessage.deliveredPerSecond)}/s; straight to the sink ${f(result.throughput.newConnectionPerMessage.directToSinkPerSecond)}/s (Sluice/direct ${result.throughput.newConnectionPerMessage.sluiceOverDirectRatio.toFixed(2)})`,
      `${COUNT} messages, ${CONCURRENCY} reused connections: accepted ${f(result.throughput.reusedConnections.acceptedPerSecond)}/s, delivered ${f(result.throughput.reusedConnections.deliveredPerSecond)}/s; straight to the sink ${f(result.throughput.reusedConnections.directToSinkPerSecond)}/s (Sluice/direct ${result.throughput.reusedConnections.sluiceOverDirectRatio.toFixed(2)})`,
      `Sluice CPU ${result.throughput.sluiceCpuSecondsPer1000.toFixed(2)} s per 1000 messages (nats-server ${result.throughput.natsServerCpuSecondsPer1000.toFixed(2)} s), Sluice peak RSS ${f(result.throughput.sluicePeakRssMB)} MB`,
      `written to ${file}`,
    ].join('\n') + '\n',
  );
} finally {
  sluice.child.kill('SIGTERM');
  await sluice.exited;
  rmSync(dir, { recursive: true, force: true });
  await sink.stop();
  await dns.stop();
  await nats.stop();
}
