/**
 * Sluice beside Postfix (`npm run bench:compare`, as root): the same
 * forwarding MX built twice on this machine, driven by the same load and
 * counted at the same sink, in one run, so the ratios hold even when the
 * machine is noisy.
 *
 *   - Postfix: a throwaway instance (bench/compare/postfix-side.ts), bare and
 *     with postsrsd (SRS), OpenDKIM (RSA-2048) and both.
 *   - Sluice: `sluice run` with its embedded nats-server (sluice-side.ts),
 *     bare, bare with `processes: 2` (two copies of the pipeline sharing
 *     the port and the nats-server, docs/decisions/0047), bare as deployed
 *     (a process per service and one nats-server: sluice-services-side.ts,
 *     docs/decisions/0038), and with SRS + DKIM signing on every forward: RSA-2048 alone (as
 *     OpenDKIM) and RSA-2048 + Ed25519 (target: 2x Postfix + postsrsd +
 *     OpenDKIM). In every DKIM variant, both sides, the message's From is
 *     one of our domains (signed-mail.ts): signing applies only to our From.
 *   - Load: Postfix's smtp-source, 20 sessions, 5 KB, 1 and 5 recipients, a
 *     new connection per message; destination: Postfix's smtp-sink; a
 *     light-load probe (~20 msg/s offered) for p50/p99 accept -> delivery.
 *   - CPU: the process trees of each system from /proc (reaped children
 *     included); memory: peak of the summed RSS (and PSS) of those trees.
 *
 * The systems run one after the other, never at once, alternating over the
 * rounds. bench/setup.sh installs postfix, postsrsd and opendkim when missing.
 * Output: a table on stdout, bench/results/compare-<date>.json and .svg;
 * `node bench/compare/readme-table.ts` puts the table into README.md.
 *
 * Knobs (environment): BENCH_MESSAGES (per run, default 2000), BENCH_SESSIONS
 * (20), BENCH_BYTES (5120), BENCH_RECIPIENTS ("1,5"), BENCH_ROUNDS (2),
 * BENCH_PROBE (probe messages, 200), BENCH_PROBE_RATE (20/s), BENCH_WARMUP
 * (200), BENCH_SYSTEMS (default: all, e.g. "sluice,postfix"). `--quick`: a
 * smoke run (300 messages, 1 round, 40 probes), written as compare-<date>-quick.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { dkimTxtRecord, loadDkimKey } from '@sluice/dkim';
import { startDnsServer } from '@sluice/test-harness';
import {
  latencyProbe,
  runSignedSource,
  runSmtpSource,
  type Sink,
  type SourceRun,
  startSink,
} from './compare/load.ts';
import { type PostfixVariant, startPostfix } from './compare/postfix-side.ts';
import { cpuSecondsOf, sampleMemory, settleMachine } from './compare/proc-usage.ts';
import {
  type CompareResult,
  isSluice,
  machineOf,
  markdownTable,
  percentile,
  type SystemName,
  type SystemResult,
  svgChart,
  type ThroughputRun,
} from './compare/report.ts';
import { SIGNED_FROM, SIGNED_SENDER, signedDumpProblems, signedMailRecords } from './compare/signed-mail.ts';
import { startSluiceServices } from './compare/sluice-services-side.ts';
import { type SluiceSigning, startSluice } from './compare/sluice-side.ts';

const quick = process.argv.includes('--quick');
const num = (name: string, full: number, smoke: number) =>
  Number(process.env[name] ?? (quick ? smoke : full));
const MESSAGES = num('BENCH_MESSAGES', 2000, 300);
const SESSIONS = num('BENCH_SESSIONS', 20, 20);
const BYTES = num('BENCH_BYTES', 5120, 5120);
const ROUNDS = num('BENCH_ROUNDS', 2, 1);
const PROBE = num('BENCH_PROBE', 200, 40);
const PROBE_RATE = num('BENCH_PROBE_RATE', 20, 20);
const WARMUP = num('BENCH_WARMUP', 200, 100);
const RECIPIENTS = (process.env['BENCH_RECIPIENTS'] ?? '1,5').split(',').map(Number);
const ALL: SystemName[] = [
  'postfix',
  'sluice',
  'sluice-2p',
  'sluice-services',
  'postfix+srs',
  'postfix+dkim',
  'postfix+srs+dkim',
  'sluice+srs+dkim',
  'sluice+srs+dkim2',
];
const SYSTEMS = process.env['BENCH_SYSTEMS']
  ? (process.env['BENCH_SYSTEMS'].split(',') as SystemName[]).filter((s) => ALL.includes(s))
  : ALL;

interface Side {
  smtpPort: number;
  pids(): number[];
  natsPid?(): number | undefined;
  stop(): Promise<void>;
}

function log(line: string) {
  process.stderr.write(`[bench:compare ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      .toString()
      .split('\n')[0]!
      .trim();
  } catch (err) {
    // postsrsd -v prints and exits non-zero on some builds
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.split('\n')[0]!.trim() || 'unknown';
  }
}

/** Sluice's DKIM keys for in.test (generated per run) and their published records. */
const pem = (type: 'rsa' | 'ed25519') =>
  (type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ed25519')
  ).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const sluiceKeys = [
  { selector: 'rsa1', privateKey: pem('rsa') },
  { selector: 'ed1', privateKey: pem('ed25519') },
];
const signingOf = (system: SystemName): SluiceSigning | undefined =>
  system === 'sluice+srs+dkim' || system === 'sluice+srs+dkim2'
    ? {
        srsSecret: randomBytes(24).toString('base64'),
        keys: system === 'sluice+srs+dkim' ? sluiceKeys.slice(0, 1) : sluiceKeys,
      }
    : undefined;
/** The DKIM variants send with our From (signed-mail.ts). */
const isSigned = (system: SystemName) => system.includes('dkim');
let signedSent = 0;

/**
 * The load of one run: smtp-source, or for the DKIM variants (both sides) the
 * same load from a worker thread with our From (runSignedSource; smtp-source
 * writes From = the envelope sender, which must stay foreign for SRS).
 */
function load(system: SystemName, port: number, run: SourceRun): Promise<void> {
  if (!isSigned(system)) return runSmtpSource(port, run);
  // Numbered over the whole benchmark: a message must not repeat one of an earlier run.
  const first = signedSent;
  signedSent += run.messages;
  return runSignedSource({ ...run, port, sender: SIGNED_SENDER, first });
}

/**
 * A signing variant must have rewritten and signed: 50 of its messages at the
 * sink tell. None right: the run measures something else, stop. Some wrong:
 * logged (e.g. Sluice leaves our From unsigned when DMARC was a temperror).
 */
function checkSigned(system: SystemName, sink: Sink) {
  if (!isSigned(system) || !system.includes('srs')) return;
  const dumps = sink.someDumps(50);
  const signatures = system === 'sluice+srs+dkim2' ? 2 : 1;
  const problems = dumps.map((d) => signedDumpProblems(d, { signatures })).filter((p) => p.length > 0);
  if (dumps.length === 0 || problems.length === dumps.length)
    throw new Error(`${system}: ${problems[0]?.join('; ') ?? 'no message at the sink'}`);
  if (problems.length)
    log(`  ${problems.length} of ${dumps.length} sampled not as expected: ${problems[0]!.join('; ')}`);
}

async function startSide(system: SystemName, sink: Sink, dnsServer: string): Promise<Side> {
  const recipients = Math.max(...RECIPIENTS);
  if (system === 'sluice-services')
    return startSluiceServices({ sinkPort: sink.port, dnsServer, recipients });
  if (isSluice(system)) {
    const signing = signingOf(system);
    return startSluice({
      sinkPort: sink.port,
      dnsServer,
      recipients,
      ...(signing ? { signing } : {}),
      ...(system === 'sluice-2p' ? { processes: 2 } : {}),
    });
  }
  const variant = (system === 'postfix' ? 'plain' : system.slice('postfix+'.length)) as PostfixVariant;
  return startPostfix({ variant, sinkPort: sink.port, recipients });
}

/** smtp-source through `side` until every message is at the sink; the run's figures. */
async function throughput(
  system: SystemName,
  side: Side,
  sink: Sink,
  recipients: number,
  messages: number,
): Promise<ThroughputRun> {
  const before = sink.count();
  const natsPid = side.natsPid?.();
  const cpu0 = cpuSecondsOf(side.pids());
  const queue0 = natsPid ? cpuSecondsOf([natsPid]) : 0;
  const t0 = performance.now();
  await load(system, side.smtpPort, { sessions: SESSIONS, messages, bytes: BYTES, recipients });
  const accepted = performance.now();
  await sink.waitForCount(before + messages, Math.max(120_000, messages * 200));
  const delivered = performance.now();
  const cpuSeconds = cpuSecondsOf(side.pids()) - cpu0;
  const deliverSeconds = (delivered - t0) / 1000;
  return {
    recipients,
    messages,
    acceptSeconds: (accepted - t0) / 1000,
    deliverSeconds,
    messagesPerSecond: messages / deliverSeconds,
    cpuSeconds,
    ...(natsPid ? { queueCpuSeconds: cpuSecondsOf([natsPid]) - queue0 } : {}),
  };
}

const startedAt = new Date();
execFileSync('sh', [join(import.meta.dirname, 'setup.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
const versions = {
  postfix: version('postconf', ['-h', 'mail_version']),
  postsrsd: version('postsrsd', ['-v']),
  opendkim: version('opendkim', ['-V']),
  'nats-server': version('/usr/sbin/nats-server', ['--version']),
  node: process.version,
};
const loadAtStart = loadavg();
const sink = await startSink();
const dns = await startDnsServer([
  { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
  ...signedMailRecords(),
  ...sluiceKeys.map((k) => ({
    name: `${k.selector}._domainkey.in.test`,
    type: 'TXT' as const,
    data: dkimTxtRecord(
      loadDkimKey(
        { domain: 'in.test', selector: k.selector, privateKey: k.privateKey, active: true },
        k.selector,
      ),
    ),
  })),
]);
const results = new Map<
  SystemName,
  { runs: ThroughputRun[]; latencies: number[]; rss: number; pss: number; procs: number }
>();

try {
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternate which of the two main systems goes first.
    const order =
      round % 2 === 1 ? SYSTEMS : [...SYSTEMS].sort((a, b) => (a === 'sluice' ? -1 : b === 'sluice' ? 1 : 0));
    for (const system of order) {
      const idle = await settleMachine();
      log(`round ${round}/${ROUNDS}: ${system} (machine ${(idle * 100).toFixed(0)}% idle before it)`);
      const side = await startSide(system, sink, dns.address);
      const memory = sampleMemory(() => side.pids());
      const acc = results.get(system) ?? { runs: [], latencies: [], rss: 0, pss: 0, procs: 0 };
      results.set(system, acc);
      try {
        const warm = sink.count();
        await load(system, side.smtpPort, {
          sessions: SESSIONS,
          messages: WARMUP,
          bytes: BYTES,
          recipients: 1,
        });
        await sink.waitForCount(warm + WARMUP, 120_000);
        for (const n of RECIPIENTS) {
          const run = await throughput(system, side, sink, n, MESSAGES);
          acc.runs.push(run);
          log(
            `  ${n} rcpt: ${run.messagesPerSecond.toFixed(1)} msg/s (accepted in ${run.acceptSeconds.toFixed(1)} s, ` +
              `delivered in ${run.deliverSeconds.toFixed(1)} s), CPU ${((run.cpuSeconds * 1000) / run.messages).toFixed(2)} s/1000`,
          );
        }
        checkSigned(system, sink);
        const lat = await latencyProbe(side.smtpPort, sink, {
          count: PROBE,
          rate: PROBE_RATE,
          bytes: BYTES,
          tag: `${system}-${round}`,
          ...(isSigned(system) ? { sender: SIGNED_SENDER, from: SIGNED_FROM } : {}),
        });
        acc.latencies.push(...lat);
        log(`  probe: p50 ${percentile(lat, 50).toFixed(1)} ms, p99 ${percentile(lat, 99).toFixed(1)} ms`);
      } finally {
        const peak = memory.stop();
        acc.rss = Math.max(acc.rss, peak.rssMB);
        acc.pss = Math.max(acc.pss, peak.pssMB);
        acc.procs = Math.max(acc.procs, peak.processes);
        await side.stop();
      }
    }
  }
} finally {
  await sink.stop();
  await dns.stop();
}

const systems: SystemResult[] = SYSTEMS.map((system) => {
  const r = results.get(system)!;
  const lat = [...r.latencies].sort((a, b) => a - b);
  return {
    system,
    runs: r.runs,
    latencyMs: {
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      samples: lat.length,
      offeredPerSecond: PROBE_RATE,
    },
    peakRssMB: r.rss,
    peakPssMB: r.pss,
    peakProcesses: r.procs,
  };
});
const result: CompareResult = {
  date: startedAt.toISOString(),
  machine: machineOf(loadAtStart),
  versions,
  load: { sessions: SESSIONS, messageBytes: BYTES, messages: MESSAGES, rounds: ROUNDS, quick },
  notes: [
    'Both systems: in.test forwarded (user@ -> user-1@out.test, Nuser@ -> user-N@out.test), unknown recipients refused at RCPT, out.test by a static transport to smtp-sink (Postfix cannot query a DNS server on a port other than 53, so neither side looks up MX records).',
    'Sluice, a process per service: `node services/SERVICE/src/main.ts` (as a pod runs it) for filter, resolver, rewriter, egress and ingress (5 Node processes, the same config) and one nats-server started apart with the settings of the embedded one; CPU and memory summed over the 6 processes.',
    'Sluice: `sluice run` (all services, one process, log level info) + its embedded nats-server (JetStream file store; syncAlways is on, but nats-server before 2.10 has no sync_interval, so on 2.9 JetStream does not fsync each message while Postfix fsyncs each queue file before its 250); its filter checks SPF/DKIM/DMARC against a loopback DNS server; its MX waits 100 ms before the greeting (smtp-server early-talker check). Postfix: no such checks, logs to a file via postlogd.',
    'CPU: user + system of each process tree (reaped children included) over the run from smtp-source start to the last message at the sink; Sluice includes nats-server.',
    'Memory: peak of the summed VmRSS (and PSS) of each tree, sampled every 250 ms over the instance life.',
    'Latency: 250 after the final dot -> modification time of smtp-sink dump file (kernel coarse clock, a few ms resolution).',
    "SRS + DKIM variants, both sides: envelope sender sender@mail.in.test (SRS-rewritten by postsrsd / Sluice), header From sender@in.test (our domain: OpenDKIM and Sluice both sign, d=in.test, relaxed canonicalization; OpenDKIM relaxed/simple, Sluice relaxed/relaxed); the message is a fixed file of about the same size (smtp-source -F). Sluice: RSA-2048 alone, or RSA-2048 + Ed25519 (two signatures); ARC sealing off (OpenDKIM does not seal). The rewriter cost per message is the signing variant's CPU per message minus bare Sluice's.",
  ],
  systems,
};

const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
const base = join(dir, `compare-${result.date.slice(0, 10)}${quick ? '-quick' : ''}`);
writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
writeFileSync(`${base}.svg`, svgChart(result));
process.stdout.write(`${markdownTable(result)}\n\nwritten: ${base}.json, ${base}.svg\n`);
