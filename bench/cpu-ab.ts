/**
 * CPU per message of Sluice alone, A against B in one run (`npm run bench:cpu --
 * [DIR_A [DIR_B]]`): for work on the message path's own cost, where the
 * Postfix comparison (compare.ts) would spend half the run on Postfix and
 * throughput moves with the machine's load more than with the change.
 *
 * Each DIR is a checkout of this repository (its node_modules in place); the
 * default A is this one. Each round starts `sluice run` from every DIR in
 * turn (alternating which goes first), with the compare benchmark's bare
 * forwarding config (sluice-side.ts: embedded nats-server, in.test forwarded
 * to smtp-sink, SPF/DKIM/DMARC against a loopback DNS server), lets it idle,
 * warms it up, then drives BENCH_MESSAGES (default 1000) with smtp-source
 * (20 sessions, 5 KB, 1 recipient). Per run: CPU seconds per 1000 messages
 * of the sluice process and of its nats-server child (/proc), RSS after
 * start (idle) and the peak (the sluice process' VmHWM; the sum with its
 * nats-server sampled every 250 ms; the nats-server's own VmHWM). BENCH_ROUNDS (default 2).
 * Needs Postfix's smtp-source and smtp-sink (bench/setup.sh installs them) and,
 * like bench:compare, a writable /var/lib/sluice-bench (root).
 * BENCH_PROFILE=DIR: `--cpu-prof` into DIR for every run. A DIR written
 * `DIR::FLAG,FLAG` runs that checkout with those Node flags (e.g.
 * `.::--max-semi-space-size=4`), to compare V8 settings on the same code.
 * BENCH_SLUICE_LOG=DIR: each run's stdout (its log, and what a flag like
 * --trace-gc prints) into DIR/sluice-N.log, N counting the runs in order.
 */
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort, startDnsServer, startNodeProcess } from '@sluice/test-harness';
import { runSmtpSource, startSink } from './compare/load.ts';
import { benchDataRoot } from './compare/postfix-side.ts';
import { cpuSecondsOf, descendantsOf, sampleMemory } from './compare/proc-usage.ts';
import { sluiceCompareConfig } from './compare/sluice-side.ts';

const dirs = process.argv.slice(2);
if (dirs.length === 0) dirs.push(resolve(import.meta.dirname, '..'));
const MESSAGES = Number(process.env['BENCH_MESSAGES'] ?? 1000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2);
const WARMUP = Number(process.env['BENCH_WARMUP'] ?? 200);
const profileDir = process.env['BENCH_PROFILE'];
const logDir = process.env['BENCH_SLUICE_LOG'];
let logCount = 0;

interface Run {
  dir: string;
  sluiceCpuPer1000: number;
  natsCpuPer1000: number;
  idleRssMB: number;
  peakRssMB: number;
  peakTreeRssMB: number;
  /** VmHWM of the nats-server child. */
  natsPeakRssMB: number;
  seconds: number;
}

const log = (line: string) =>
  process.stderr.write(`[bench:cpu-ab ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

/** A memory figure of one process (not its children) from /proc/PID/status, in MB. */
function statusMB(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

const sink = await startSink();
const dns = await startDnsServer([{ name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }]);

async function runOnce(dir: string): Promise<Run> {
  const [checkout, flags] = dir.split('::') as [string, string | undefined];
  const data = mkdtempSync(join(benchDataRoot(), 'sluice-ab-'));
  const configFile = join(data, 'sluice.yaml');
  const smtpPort = await freePort();
  writeFileSync(
    configFile,
    sluiceCompareConfig({
      smtpPort,
      sinkPort: sink.port,
      natsPort: await freePort(),
      dataDir: join(data, 'nats'),
      dnsServer: dns.address,
      recipients: 1,
    }),
  );
  const proc = await startNodeProcess(
    [join(resolve(checkout), 'cli/bin/sluice.js'), 'run', '--config', configFile],
    {
      timeoutMs: 60_000,
      nodeArgs: [
        ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
        ...(flags ? flags.split(',') : []),
      ],
    },
  );
  proc.child.stdout!.removeAllListeners('data');
  if (logDir) proc.child.stdout!.pipe(createWriteStream(join(logDir, `sluice-${++logCount}.log`)));
  else proc.child.stdout!.resume();
  const pid = proc.child.pid!;
  const natsPid = descendantsOf(pid).find(
    (p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'nats-server',
  );
  try {
    await new Promise((r) => setTimeout(r, 2000)); // idle: after start, before any mail
    const idleRssMB = statusMB(pid, 'VmRSS');
    const memory = sampleMemory(() => [pid]);
    const warm = sink.count();
    await runSmtpSource(smtpPort, { sessions: 20, messages: WARMUP, bytes: 5120, recipients: 1 });
    await sink.waitForCount(warm + WARMUP, 120_000);
    const before = sink.count();
    const cpu0 = cpuSecondsOf([pid]);
    const nats0 = natsPid ? cpuSecondsOf([natsPid]) : 0;
    const t0 = performance.now();
    await runSmtpSource(smtpPort, { sessions: 20, messages: MESSAGES, bytes: 5120, recipients: 1 });
    await sink.waitForCount(before + MESSAGES, 300_000);
    const seconds = (performance.now() - t0) / 1000;
    const natsCpu = natsPid ? cpuSecondsOf([natsPid]) - nats0 : 0;
    const total = cpuSecondsOf([pid]) - cpu0; // the tree: includes nats-server
    const peak = memory.stop();
    return {
      dir,
      sluiceCpuPer1000: ((total - natsCpu) * 1000) / MESSAGES,
      natsCpuPer1000: (natsCpu * 1000) / MESSAGES,
      idleRssMB,
      peakRssMB: statusMB(pid, 'VmHWM'),
      peakTreeRssMB: peak.rssMB,
      natsPeakRssMB: natsPid ? statusMB(natsPid, 'VmHWM') : 0,
      seconds,
    };
  } finally {
    proc.child.kill('SIGTERM');
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), 20_000);
    await proc.exited;
    clearTimeout(timer);
    rmSync(data, { recursive: true, force: true });
  }
}

const runs: Run[] = [];
try {
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? dirs : [...dirs].reverse();
    for (const dir of order) {
      const r = await runOnce(dir);
      runs.push(r);
      log(
        `round ${round} ${dir}: sluice ${r.sluiceCpuPer1000.toFixed(2)} + nats ${r.natsCpuPer1000.toFixed(2)} CPU-s/1000, ` +
          `${(MESSAGES / r.seconds).toFixed(0)} msg/s, RSS idle ${r.idleRssMB.toFixed(0)} MB, peak ${r.peakRssMB.toFixed(0)} MB (sluice process), ${r.peakTreeRssMB.toFixed(0)} MB with nats-server (its own peak ${r.natsPeakRssMB.toFixed(0)} MB)`,
      );
    }
  }
} finally {
  await sink.stop();
  await dns.stop();
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
for (const dir of dirs) {
  const mine = runs.filter((r) => r.dir === dir);
  const m = (f: (r: Run) => number) => median(mine.map(f)).toFixed(2);
  process.stdout.write(
    `${dir}: median of ${mine.length}: sluice ${m((r) => r.sluiceCpuPer1000)} + nats-server ${m((r) => r.natsCpuPer1000)} CPU-s/1000, ` +
      `RSS idle ${m((r) => r.idleRssMB)} MB, peak ${m((r) => r.peakRssMB)} MB (${m((r) => r.peakTreeRssMB)} MB with nats-server; nats-server's own peak ${m((r) => r.natsPeakRssMB)} MB)\n`,
  );
}
