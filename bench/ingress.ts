/**
 * The MX benchmark (`npm run bench:ingress`, as root; issue 10): what one
 * ingress replica takes, with the filter in the loop, beside Postfix's smtpd
 * in the same run.
 *
 *   - Sessions/s (= messages/s: one small message per session) at 1 and at
 *     200 concurrent connections: connect, EHLO, MAIL, RCPT, DATA, a ~1 KB
 *     message, QUIT, one command at a time (bench/ingress/session-load.ts).
 *     Every accepted message must reach the sink before the next phase, so a
 *     backlog of one phase does not slow the next.
 *   - 1,000 sessions held idle after EHLO: the memory they cost (RSS and PSS
 *     of the process tree, after minus before, per session), measured first,
 *     after a short warm-up, before the throughput runs grow the heap.
 *
 * The systems are the comparison benchmark's forwarding MX (bench/compare):
 * Sluice is `sluice run` (every service in one process, embedded
 * nats-server, the filter checking SPF/DKIM/DMARC against a loopback DNS
 * server) with its session limits raised for one client IP holding 1,000
 * sessions; Postfix is a throwaway instance with its process and per-client
 * limits raised the same way (one smtpd process per session). Both deliver
 * to Postfix's smtp-sink. bench/setup.sh installs Postfix when missing.
 *
 * Knobs (environment): BENCH_SECONDS (per throughput phase, default 10),
 * BENCH_CONCURRENCY ("1,200"), BENCH_HELD (1000), BENCH_SYSTEMS ("sluice,postfix").
 * Output: a table on stdout and bench/results/ingress-<date>.json.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { startDnsServer } from '@sluice/test-harness';
import { SENDER, type Sink, startSink } from './compare/load.ts';
import { sourceRecipient } from './compare/postfix-config.ts';
import { startPostfix } from './compare/postfix-side.ts';
import { memoryOf } from './compare/proc-usage.ts';
import { machineOf } from './compare/report.ts';
import { startSluice } from './compare/sluice-side.ts';
import { holdSessions, runSessions, type SessionRun, type SessionScript } from './ingress/session-load.ts';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 10);
const CONCURRENCY = (process.env['BENCH_CONCURRENCY'] ?? '1,200').split(',').map(Number);
const HELD = Number(process.env['BENCH_HELD'] ?? 1000);
const SYSTEMS = (process.env['BENCH_SYSTEMS'] ?? 'sluice,postfix').split(',') as Array<'sluice' | 'postfix'>;
/** Makes this run's Message-IDs differ from an earlier run's. */
const RUN = randomBytes(6).toString('hex');
/** Room for the held sessions and the load's connections still closing. */
const LIMIT = Math.max(HELD, ...CONCURRENCY) + 100;

interface Side {
  smtpPort: number;
  pids(): number[];
  stop(): Promise<void>;
}

interface SystemResult {
  system: string;
  runs: SessionRun[];
  held: {
    requested: number;
    held: number;
    stillOpen: number;
    rssMBPerSession: number;
    pssMBPerSession: number;
  };
  memoryBeforeHeld: { rssMB: number; pssMB: number; processes: number };
  memoryWithHeld: { rssMB: number; pssMB: number; processes: number };
}

function log(line: string) {
  process.stderr.write(`[bench:ingress ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

const script: SessionScript = {
  helo: 'client.sender.test',
  from: SENDER,
  to: sourceRecipient(1),
  message: (n) =>
    `${[
      `From: ${SENDER}`,
      `To: ${sourceRecipient(1)}`,
      `Subject: ingress bench ${n}`,
      `Message-ID: <${RUN}.${n}@sender.test>`,
      '',
      ...Array.from({ length: 12 }, (_, i) => `line ${i} of a small message, about a kilobyte in all......`),
      '',
    ].join('\r\n')}`,
};

function startSide(system: 'sluice' | 'postfix', sink: Sink, dnsServer: string): Promise<Side> {
  if (system === 'sluice') {
    return startSluice({
      sinkPort: sink.port,
      dnsServer,
      recipients: 1,
      sessionLimits: { maxClients: LIMIT, perIp: LIMIT, perNet: LIMIT },
    });
  }
  return startPostfix({
    variant: 'plain',
    sinkPort: sink.port,
    recipients: 1,
    // One smtpd process per session: room for all of them, and no per-client cap (anvil).
    extraMainCf: [
      `default_process_limit = ${LIMIT}`,
      'smtpd_client_connection_count_limit = 0',
      'smtpd_client_connection_rate_limit = 0',
      'smtpd_client_message_rate_limit = 0',
    ],
  });
}

async function measure(system: 'sluice' | 'postfix', sink: Sink, dnsServer: string): Promise<SystemResult> {
  const side = await startSide(system, sink, dnsServer);
  try {
    // Every message this side accepted must be at the sink before the next phase.
    const atStart = sink.count();
    let accepted = 0;
    // Warm-up: JIT, connections to NATS, the first lookups.
    accepted += (await runSessions(side.smtpPort, { connections: 10, seconds: 2, script })).sessions;
    await sink.waitForCount(atStart + accepted, 120_000);
    // Held sessions first, while the heap is not yet grown by the throughput runs' garbage.
    const settle = memoryOf(side.pids());
    const held = await holdSessions(side.smtpPort, HELD, script.helo);
    const withHeld = memoryOf(side.pids());
    const stillOpen = held.open();
    held.close();
    const runs: SessionRun[] = [];
    for (const connections of CONCURRENCY) {
      const run = await runSessions(side.smtpPort, { connections, seconds: SECONDS, script });
      runs.push(run);
      log(
        `  ${system}, ${connections} connections: ${run.sessionsPerSecond.toFixed(1)} sessions/s (${run.sessions} in ${run.seconds.toFixed(1)} s, ${run.failed} failed${run.firstFailure ? `: ${run.firstFailure}` : ''})`,
      );
      accepted += run.sessions;
      await sink.waitForCount(atStart + accepted, 120_000);
    }
    const per = (key: 'rssMB' | 'pssMB') => (held.held ? (withHeld[key] - settle[key]) / held.held : 0);
    log(
      `  ${system}, ${held.held}/${HELD} sessions held: ${(per('rssMB') * 1024).toFixed(1)} KB RSS, ${(per('pssMB') * 1024).toFixed(1)} KB PSS each`,
    );
    return {
      system,
      runs,
      held: {
        requested: HELD,
        held: held.held,
        stillOpen,
        rssMBPerSession: per('rssMB'),
        pssMBPerSession: per('pssMB'),
      },
      memoryBeforeHeld: settle,
      memoryWithHeld: withHeld,
    };
  } finally {
    await side.stop();
  }
}

function table(results: SystemResult[]): string {
  const header = `| | ${CONCURRENCY.map((c) => `sessions/s, ${c} conn.`).join(' | ')} | KB per held session (RSS / PSS) |`;
  const rule = `|---|${CONCURRENCY.map(() => '--:|').join('')}--:|`;
  const rows = results.map(
    (r) =>
      `| ${r.system} | ${r.runs.map((x) => x.sessionsPerSecond.toFixed(0)).join(' | ')} | ${(r.held.rssMBPerSession * 1024).toFixed(0)} / ${(r.held.pssMBPerSession * 1024).toFixed(0)} |`,
  );
  return [header, rule, ...rows].join('\n');
}

const startedAt = new Date();
execFileSync('sh', [join(import.meta.dirname, 'setup.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
const loadAtStart = loadavg();
const sink = await startSink();
const dns = await startDnsServer([{ name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }]);
const results: SystemResult[] = [];
try {
  for (const system of SYSTEMS) {
    log(`${system}`);
    results.push(await measure(system, sink, dns.address));
  }
} finally {
  await sink.stop();
  await dns.stop();
}

const out = {
  date: startedAt.toISOString(),
  machine: machineOf(loadAtStart),
  load: { seconds: SECONDS, concurrency: CONCURRENCY, held: HELD, messageBytes: script.message(0).length },
  notes: [
    'One message per session: sessions/s is also messages/s accepted. The client is one Node process on the same machine.',
    'Sluice: `sluice run` (all services, embedded nats-server), the filter checks SPF/DKIM/DMARC on a loopback DNS server. Postfix: plain forwarding MX (bench/compare), no checks.',
    'Held sessions: memory of the process tree (Sluice + nats-server; the Postfix master and its children) with the sessions open after EHLO, minus before, per session.',
  ],
  systems: results,
};
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `ingress-${out.date.slice(0, 10)}.json`);
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
process.stdout.write(`${table(results)}\n\nwritten: ${file}\n`);
