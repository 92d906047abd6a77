/**
 * The comparison's results and their renderings (pure, no I/O): the JSON
 * shape written to bench/results/compare-<date>.json, the summary table
 * (Markdown: printed on stdout and put into README.md between the
 * `<!-- bench:compare -->` markers), and a hand-built SVG bar chart.
 */

import { cpus } from 'node:os';
export type SystemName =
  | 'sluice'
  | 'sluice-2p'
  | 'sluice-services'
  | 'sluice+srs+dkim'
  | 'sluice+srs+dkim2'
  | 'postfix'
  | 'postfix+srs'
  | 'postfix+dkim'
  | 'postfix+srs+dkim';

export const SYSTEM_LABELS: Record<SystemName, string> = {
  sluice: 'Sluice',
  'sluice-2p': 'Sluice, `processes: 2`',
  'sluice-services': 'Sluice, a process per service',
  'sluice+srs+dkim': 'Sluice + SRS + DKIM (RSA-2048)',
  'sluice+srs+dkim2': 'Sluice + SRS + DKIM (RSA-2048 + Ed25519)',
  postfix: 'Postfix',
  'postfix+srs': 'Postfix + postsrsd',
  'postfix+dkim': 'Postfix + OpenDKIM',
  'postfix+srs+dkim': 'Postfix + postsrsd + OpenDKIM',
};

/** One throughput measurement: `messages` through smtp-source until all of them reached the sink. */
export interface ThroughputRun {
  recipients: number;
  messages: number;
  /** smtp-source start -> its exit (every message accepted), seconds. */
  acceptSeconds: number;
  /** smtp-source start -> the last message at the sink, seconds. */
  deliverSeconds: number;
  messagesPerSecond: number;
  /** CPU (user + system) of the whole system under test over the run, seconds. */
  cpuSeconds: number;
  /** The share of the message queue (nats-server for Sluice), seconds. */
  queueCpuSeconds?: number;
}

export interface SystemResult {
  system: SystemName;
  /** Per round, per recipient count. */
  runs: ThroughputRun[];
  /** Light-load probe, 250 after the dot -> arrival at the sink, ms. */
  latencyMs: { p50: number; p99: number; samples: number; offeredPerSecond: number };
  /** Peak over the instance's life (warm-up, runs, probe), summed over its processes. */
  peakRssMB: number;
  peakPssMB: number;
  peakProcesses: number;
}

/** The machine a benchmark ran on, for its result file. */
export function machineOf(loadavgAtStart: number[]): CompareResult['machine'] {
  return { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, loadavgAtStart };
}

export interface CompareResult {
  date: string;
  machine: { cpus: number; model: string; node: string; loadavgAtStart: number[] };
  versions: Record<string, string>;
  load: { sessions: number; messageBytes: number; messages: number; rounds: number; quick: boolean };
  notes: string[];
  systems: SystemResult[];
}

export interface Summary {
  system: SystemName;
  /** Mean over rounds, per recipient count. */
  messagesPerSecond: Record<number, number>;
  /** Lowest and highest round, per recipient count: how noisy the machine was. */
  messagesPerSecondRange: Record<number, [number, number]>;
  cpuSecondsPer1000: number;
  queueCpuSecondsPer1000?: number;
  p50: number;
  p99: number;
  peakRssMB: number;
  peakPssMB: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function summarize(r: SystemResult): Summary {
  const byRcpt = new Map<number, ThroughputRun[]>();
  for (const run of r.runs) byRcpt.set(run.recipients, [...(byRcpt.get(run.recipients) ?? []), run]);
  const messages = r.runs.reduce((a, x) => a + x.messages, 0);
  const per1000 = (s: number) => (s * 1000) / Math.max(1, messages);
  const queue = r.runs.some((x) => x.queueCpuSeconds !== undefined)
    ? per1000(r.runs.reduce((a, x) => a + (x.queueCpuSeconds ?? 0), 0))
    : undefined;
  return {
    system: r.system,
    messagesPerSecond: Object.fromEntries(
      [...byRcpt].map(([n, runs]) => [n, mean(runs.map((x) => x.messagesPerSecond))]),
    ),
    messagesPerSecondRange: Object.fromEntries(
      [...byRcpt].map(([n, runs]) => {
        const xs = runs.map((x) => x.messagesPerSecond);
        return [n, [Math.min(...xs), Math.max(...xs)]];
      }),
    ),
    cpuSecondsPer1000: per1000(r.runs.reduce((a, x) => a + x.cpuSeconds, 0)),
    ...(queue !== undefined ? { queueCpuSecondsPer1000: queue } : {}),
    p50: r.latencyMs.p50,
    p99: r.latencyMs.p99,
    peakRssMB: r.peakRssMB,
    peakPssMB: r.peakPssMB,
  };
}

export interface Ratios {
  /** Sluice msg/s over bare Postfix msg/s, per recipient count (target >= 1.0). */
  throughput: Record<number, number>;
  /** Sluice (+ nats-server) CPU per message over Postfix's (target <= 1.0). */
  cpu: number;
  /**
   * Peak memory, Sluice + nats-server over all Postfix processes, by PSS: summed RSS counts the
   * shared libraries of Postfix's many small processes once per process.
   */
  pss: number;
}

/** `system` (by default `sluice run`, all in one process) against bare Postfix. */
export function ratios(result: CompareResult, system: SystemName = 'sluice'): Ratios | undefined {
  const s = result.systems.find((x) => x.system === system);
  const p = result.systems.find((x) => x.system === 'postfix');
  if (!s || !p) return undefined;
  const ss = summarize(s);
  const ps = summarize(p);
  return {
    throughput: Object.fromEntries(
      Object.keys(ss.messagesPerSecond).map((k) => [
        Number(k),
        ss.messagesPerSecond[Number(k)]! / ps.messagesPerSecond[Number(k)]!,
      ]),
    ),
    cpu: ss.cpuSecondsPer1000 / ps.cpuSecondsPer1000,
    pss: ss.peakPssMB / ps.peakPssMB,
  };
}

/** Is this one of Sluice's variants (the blue bars)? */
export const isSluice = (system: SystemName) => system.startsWith('sluice');

export interface SigningRatios {
  /** Sluice + SRS + DKIM (RSA-2048) over Postfix + postsrsd + OpenDKIM, msg/s per recipient count (target >= 2.0). */
  throughput: Record<number, number>;
  /** CPU per message, same pair (lower is better). */
  cpu: number;
  /**
   * What SRS + DKIM signing adds to Sluice's CPU per message, ms: the signing
   * variant's CPU per message minus bare Sluice's in the same run, per
   * signing variant present.
   */
  rewriterCpuMs: Partial<Record<'sluice+srs+dkim' | 'sluice+srs+dkim2', number>>;
}

export function signingRatios(result: CompareResult): SigningRatios | undefined {
  const find = (n: SystemName) => {
    const s = result.systems.find((x) => x.system === n);
    return s ? summarize(s) : undefined;
  };
  const s = find('sluice+srs+dkim');
  const p = find('postfix+srs+dkim');
  if (!s || !p) return undefined;
  const bare = find('sluice');
  const rewriterCpuMs: SigningRatios['rewriterCpuMs'] = {};
  for (const v of ['sluice+srs+dkim', 'sluice+srs+dkim2'] as const) {
    const signed = find(v);
    if (bare && signed) rewriterCpuMs[v] = signed.cpuSecondsPer1000 - bare.cpuSecondsPer1000;
  }
  return {
    throughput: Object.fromEntries(
      Object.keys(s.messagesPerSecond).map((k) => [
        Number(k),
        s.messagesPerSecond[Number(k)]! / p.messagesPerSecond[Number(k)]!,
      ]),
    ),
    cpu: s.cpuSecondsPer1000 / p.cpuSecondsPer1000,
    rewriterCpuMs,
  };
}

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

export function targetChecks(result: CompareResult): TargetCheck[] {
  const r = ratios(result);
  const s = result.systems.find((x) => x.system === 'sluice');
  if (!r || !s) return [];
  const ss = summarize(s);
  const rcpts = Object.keys(r.throughput).map(Number);
  const minRatio = Math.min(...rcpts.map((n) => r.throughput[n]!));
  const sr = signingRatios(result);
  const signing: TargetCheck[] = sr
    ? [
        {
          target: 'forwarding with SRS + DKIM >= 2.0x Postfix + postsrsd + OpenDKIM (same run)',
          measured: Object.keys(sr.throughput)
            .map(Number)
            .map((n) => `${fmt(sr.throughput[n]!, 2)}x (${n} rcpt)`)
            .join(', '),
          met: Math.min(...Object.values(sr.throughput)) >= 2,
        },
      ]
    : [];
  return [
    {
      target: 'forwarding >= 1.0x bare Postfix (same run)',
      measured: rcpts.map((n) => `${fmt(r.throughput[n]!, 2)}x (${n} rcpt)`).join(', '),
      met: minRatio >= 1,
    },
    ...services(result),
    {
      target: 'p99 accept -> delivery at light load <= 50 ms',
      measured: `${fmt(ss.p99, 0)} ms`,
      met: ss.p99 <= 50,
    },
    {
      target: "CPU per message (Sluice + nats-server) <= Postfix's",
      measured: `${fmt(r.cpu, 2)}x`,
      met: r.cpu <= 1,
    },
    {
      target: 'all-in-one peak RSS < 300 MB',
      measured: `${fmt(ss.peakRssMB, 0)} MB`,
      met: ss.peakRssMB < 300,
    },
    ...signing,
  ];
}

/** The throughput target read on the other shapes too, when they ran. */
function services(result: CompareResult): TargetCheck[] {
  return (
    [
      ['sluice-2p', 'two processes of `sluice run` (`processes: 2`)'],
      ['sluice-services', 'a process per service'],
    ] as const
  ).flatMap(([system, label]) => {
    const r = ratios(result, system);
    if (!r) return [];
    const rcpts = Object.keys(r.throughput).map(Number);
    return [
      {
        target: `forwarding >= 1.0x bare Postfix, ${label} (same run)`,
        measured: rcpts.map((n) => `${fmt(r.throughput[n]!, 2)}x (${n} rcpt)`).join(', '),
        met: Math.min(...rcpts.map((n) => r.throughput[n]!)) >= 1,
      },
    ];
  });
}

function fmt(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The summary as a Markdown table plus the ratio and target lines. */
export function markdownTable(result: CompareResult): string {
  const sums = result.systems.map(summarize);
  const rcpts = [...new Set(result.systems.flatMap((s) => s.runs.map((r) => r.recipients)))].sort(
    (a, b) => a - b,
  );
  const header = [
    'system',
    ...rcpts.map((n) => `msg/s, ${n} rcpt`),
    'p50 / p99 ms',
    'CPU s / 1,000 msgs',
    'peak RSS MB (PSS)',
  ];
  const rows = sums.map((s) => [
    SYSTEM_LABELS[s.system],
    ...rcpts.map((n) => {
      const range = s.messagesPerSecondRange[n];
      const mean = fmt(s.messagesPerSecond[n] ?? Number.NaN);
      return range && range[1] > range[0] ? `${mean} (${fmt(range[0], 0)}-${fmt(range[1], 0)})` : mean;
    }),
    `${fmt(s.p50, 1)} / ${fmt(s.p99, 1)}`,
    s.queueCpuSecondsPer1000 !== undefined
      ? `${fmt(s.cpuSecondsPer1000, 2)} (nats-server ${fmt(s.queueCpuSecondsPer1000, 2)})`
      : fmt(s.cpuSecondsPer1000, 2),
    `${fmt(s.peakRssMB, 0)} (${fmt(s.peakPssMB, 0)})`,
  ]);
  for (const [system, label] of [
    ['sluice', 'Sluice / Postfix'],
    ['sluice-2p', 'Sluice, `processes: 2` / Postfix'],
    ['sluice-services', 'Sluice, a process per service / Postfix'],
  ] as const) {
    const r = ratios(result, system);
    if (!r) continue;
    rows.push([
      `**${label}**`,
      ...rcpts.map((n) => `**${fmt(r.throughput[n]!, 2)}x**`),
      '',
      `**${fmt(r.cpu, 2)}x**`,
      `**${fmt(r.pss, 2)}x** (PSS)`,
    ]);
  }
  const sr = signingRatios(result);
  if (sr) {
    rows.push([
      '**Sluice + SRS + DKIM / Postfix + postsrsd + OpenDKIM**',
      ...rcpts.map((n) => (sr.throughput[n] !== undefined ? `**${fmt(sr.throughput[n], 2)}x**` : '')),
      '',
      `**${fmt(sr.cpu, 2)}x**`,
      '',
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const out = [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)];
  const checks = targetChecks(result);
  const l = result.load;
  return [
    `${result.date.slice(0, 10)}, ${result.machine.cpus} cores; smtp-source, ${l.sessions} sessions, ` +
      `${fmt(l.messageBytes / 1024, 0)} KB messages, ${fmt(l.messages, 0)} per run, a new connection per message, ` +
      `${l.rounds} round${l.rounds === 1 ? '' : 's'} alternating the systems${l.quick ? ' (quick mode)' : ''} ` +
      `(msg/s: mean, and the lowest-highest round); load average ${fmt(result.machine.loadavgAtStart[0] ?? 0)} at the start; ` +
      'latency: the light-load probe (about 20 msg/s offered), 250 after the dot -> arrival at smtp-sink.',
    '',
    ...out,
    '',
    ...checks.map((c) => `- ${c.met ? 'met' : 'not met'}: ${c.target}: ${c.measured}`),
    ...Object.entries(sr?.rewriterCpuMs ?? {}).map(
      ([v, ms]) =>
        `- the rewriter's cost per message (SRS + DKIM signing, ${SYSTEM_LABELS[v as SystemName].replace(/^.*\((.*)\)$/, '$1')}): ` +
        `${fmt(ms, 2)} ms CPU over bare Sluice`,
    ),
  ].join('\n');
}

const MARK_START = '<!-- bench:compare -->';
const MARK_END = '<!-- /bench:compare -->';

/** README text with the table between the markers replaced (the markers must exist). */
export function replaceReadmeTable(readme: string, table: string): string {
  const a = readme.indexOf(MARK_START);
  const b = readme.indexOf(MARK_END);
  if (a < 0 || b < a) throw new Error(`README.md has no ${MARK_START} ... ${MARK_END} section`);
  return `${readme.slice(0, a + MARK_START.length)}\n${table}\n${readme.slice(b)}`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Three panels of horizontal bars, one bar per system: messages/s (per
 * recipient count), CPU seconds per 1,000 messages, p99 latency.
 */
export function svgChart(result: CompareResult): string {
  const sums = result.systems.map(summarize);
  const rcpts = [...new Set(result.systems.flatMap((s) => s.runs.map((r) => r.recipients)))].sort(
    (a, b) => a - b,
  );
  type Panel = {
    title: string;
    bars: Array<{ label: string; value: number; sluice: boolean }>;
    unit: string;
  };
  const panels: Panel[] = [
    ...rcpts.map((n) => ({
      title: `messages/s, ${n} recipient${n === 1 ? '' : 's'} (higher is better)`,
      unit: '/s',
      bars: sums.map((s) => ({
        label: SYSTEM_LABELS[s.system],
        value: s.messagesPerSecond[n] ?? 0,
        sluice: isSluice(s.system),
      })),
    })),
    {
      title: 'CPU seconds per 1,000 messages (lower is better)',
      unit: ' s',
      bars: sums.map((s) => ({
        label: SYSTEM_LABELS[s.system],
        value: s.cpuSecondsPer1000,
        sluice: isSluice(s.system),
      })),
    },
    {
      title: 'p99 ms, 250 -> at the sink, light load (lower is better)',
      unit: ' ms',
      bars: sums.map((s) => ({
        label: SYSTEM_LABELS[s.system],
        value: s.p99,
        sluice: isSluice(s.system),
      })),
    },
  ];
  const width = 760;
  const labelW = 230;
  const barMax = width - labelW - 90;
  const barH = 18;
  const gap = 6;
  let y = 40;
  const parts: string[] = [];
  parts.push(
    `<text x="10" y="24" font-size="16" font-weight="bold">Sluice beside Postfix, ${esc(result.date.slice(0, 10))} (${result.machine.cpus} cores)</text>`,
  );
  for (const p of panels) {
    y += 22;
    parts.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${esc(p.title)}</text>`);
    y += 8;
    const max = Math.max(...p.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)), 1e-9);
    for (const b of p.bars) {
      const v = Number.isFinite(b.value) ? b.value : 0;
      const w = Math.max(1, Math.round((v / max) * barMax));
      parts.push(
        `<text x="10" y="${y + 13}" font-size="12">${esc(b.label)}</text>`,
        `<rect x="${labelW}" y="${y}" width="${w}" height="${barH}" fill="${b.sluice ? '#2a7ab0' : '#b0b0b0'}"/>`,
        `<text x="${labelW + w + 6}" y="${y + 13}" font-size="12">${esc(fmt(v, v >= 100 ? 0 : 1))}${esc(p.unit)}</text>`,
      );
      y += barH + gap;
    }
  }
  y += 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}
