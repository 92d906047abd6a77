/**
 * CPU and memory of a system under test, from /proc: the process trees
 * below given root pids (Sluice and its nats-server child; the Postfix master
 * and its children, postsrsd, opendkim).
 *
 * CPU: utime + stime + cutime + cstime of every live process of the trees. A
 * child that exits is reaped by its parent, whose cutime/cstime then carry
 * its CPU, so the sum neither loses nor double-counts it (Postfix's smtpd,
 * cleanup and smtp processes come and go during a run). Memory: the sum of
 * VmRSS (and of Pss, which splits shared pages between processes, fairer to
 * Postfix's many small processes) over the trees, sampled; the peak sample.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface Stat {
  ppid: number;
  cpuTicks: number;
}

function statOf(pid: number): Stat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state ppid ... utime(14) stime(15) cutime(16) cstime(17), 1-based overall.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined; // exited meanwhile
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

/** Every live descendant of `root` (not root itself). */
export function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const pid of allPids()) {
    const st = statOf(pid);
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(pid);
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

function treesOf(roots: number[]): number[] {
  return [...new Set(roots.flatMap((r) => [r, ...descendantsOf(r)]))];
}

/** CPU seconds (user + system, own and reaped children) of the trees below `roots`. */
export function cpuSecondsOf(roots: number[]): number {
  let ticks = 0;
  for (const pid of treesOf(roots)) ticks += statOf(pid)?.cpuTicks ?? 0;
  return ticks / TICKS_PER_SECOND;
}

function kB(text: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Current RSS and PSS sums (MB) and process count of the trees below `roots`. */
export function memoryOf(roots: number[]): { rssMB: number; pssMB: number; processes: number } {
  let rss = 0;
  let pss = 0;
  let processes = 0;
  for (const pid of treesOf(roots)) {
    try {
      rss += kB(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
      pss += kB(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
      processes++;
    } catch {}
  }
  return { rssMB: rss / 1024, pssMB: pss / 1024, processes };
}

/** Sample memoryOf(roots()) every `intervalMs` until stop(); the peaks seen. */
export function sampleMemory(roots: () => number[], intervalMs = 250) {
  const peak = { rssMB: 0, pssMB: 0, processes: 0 };
  const sample = () => {
    const m = memoryOf(roots());
    peak.rssMB = Math.max(peak.rssMB, m.rssMB);
    peak.pssMB = Math.max(peak.pssMB, m.pssMB);
    peak.processes = Math.max(peak.processes, m.processes);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { ...peak };
    },
  };
}

/** Busy and total jiffies of all CPUs (/proc/stat). */
function cpuJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/**
 * Let the machine settle before a measured system starts: write back dirty pages (the previous
 * system's queue files) and wait until the CPUs are at least `idleShare` idle over `sampleMs`,
 * at most `maxMs`. The previous system's stop (a nats-server store removed, Postfix's queue
 * flushed) otherwise bills its tail to the next one. Returns the idle share last seen.
 */
export async function settleMachine(
  opts: { idleShare?: number; sampleMs?: number; maxMs?: number } = {},
): Promise<number> {
  const { idleShare = 0.9, sampleMs = 500, maxMs = 20_000 } = opts;
  try {
    execFileSync('sync');
  } catch {
    // not fatal: only a settle
  }
  const deadline = Date.now() + maxMs;
  let idle = 0;
  do {
    const a = cpuJiffies();
    await new Promise((r) => setTimeout(r, sampleMs));
    const b = cpuJiffies();
    idle = 1 - (b.busy - a.busy) / Math.max(1, b.total - a.total);
  } while (idle < idleShare && Date.now() < deadline);
  return idle;
}
