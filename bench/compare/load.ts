/**
 * Load and measurement tools shared by both sides, so each system sees the
 * same clients and the same sink:
 *
 * - Postfix's smtp-sink as the destination, counting delivered transactions
 *   (`-c`: its "mesg=N" counter on stdout) and dumping each one to a file
 *   (`-d`), whose last write is the arrival time the latency probe reads.
 * - Postfix's smtp-source as the load generator (`-s` parallel sessions, one
 *   new connection per message as at an MX, `-l` bytes, `-r` recipients).
 * - The light-load probe: one message every 1/rate s, each on its own
 *   connection (sent on schedule, not after the previous one finished), with
 *   an X-Bench-Probe id; accept time at the 250 after the final dot, arrival
 *   when the sink last wrote the dump file of that id (inotify).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { freePort, smtpConversation } from '@sluice/test-harness';
import { sourceRecipient } from './postfix-config.ts';

export const SENDER = 'sender@sender.test';

/** Wall-clock ms with sub-ms resolution: the one clock of the probe's accept and arrival times. */
const now = () => performance.timeOrigin + performance.now();

export interface Sink {
  port: number;
  /** Transactions received so far. */
  count(): number;
  /** Resolve once count() >= n; reject after timeoutMs. */
  waitForCount(n: number, timeoutMs: number): Promise<void>;
  /**
   * Watch the dump directory (inotify): until the returned function is
   * called, note per dump file when it was last written. That function
   * returns the arrival time (ms, now()) of each probe id found in the dumps.
   */
  watchArrivals(): () => Map<string, number>;
  /** Remove the dump files so far. */
  clearDumps(): void;
  /** The first 16 KB of up to `limit` dump files (smtp-sink's X-Mail-Args etc., then the message). */
  someDumps(limit: number): string[];
  stop(): Promise<void>;
}

export async function startSink(): Promise<Sink> {
  const port = await freePort();
  const dumpDir = mkdtempSync(join(tmpdir(), 'sluice-bench-sink-'));
  chmodSync(dumpDir, 0o777); // smtp-sink drops to nobody before writing
  const child = spawn(
    'smtp-sink',
    [
      '-c',
      ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []),
      '-d',
      `${dumpDir}/%H%M%S.`,
      `127.0.0.1:${port}`,
      '1024',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let count = 0;
  let tail = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('latin1');
  child.stdout!.on('data', (d: string) => {
    tail = (tail + d).slice(-200);
    const all = [...tail.matchAll(/mesg=(\d+)/g)];
    if (all.length) count = Number(all.at(-1)![1]);
    for (const w of waiters) w();
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Ready when it accepts connections.
  for (let i = 0; ; i++) {
    const ok = await smtpConversation(port, ['QUIT'], { timeoutMs: 1000 }).then(
      () => true,
      () => false,
    );
    if (ok) break;
    if (i > 50 || child.exitCode !== null) throw new Error(`smtp-sink did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    count: () => count,
    waitForCount(n, timeoutMs) {
      if (count >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`smtp-sink: ${count} of ${n} messages within ${timeoutMs} ms`));
        }, timeoutMs);
        const check = () => {
          if (count >= n) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        waiters.add(check);
      });
    },
    watchArrivals() {
      // smtp-sink writes the dump as the message comes in and is done at the final dot, just
      // before its 250: the last write event of a file is the message's arrival. (The file's
      // mtime would do, but it comes from the kernel's coarse clock: a tick, up to 10 ms.)
      const lastWrite = new Map<string, number>();
      const watcher = watch(dumpDir, (_event, name) => {
        if (name) lastWrite.set(name, now());
      });
      return () => {
        watcher.close();
        const out = new Map<string, number>();
        const buf = Buffer.alloc(4096);
        for (const [name, at] of lastWrite) {
          const file = join(dumpDir, name);
          let n = 0;
          try {
            const fd = openSync(file, 'r');
            n = readSync(fd, buf, 0, buf.length, 0);
            closeSync(fd);
          } catch {
            continue;
          }
          const id = /X-Bench-Probe: (\S+)/.exec(buf.toString('latin1', 0, n))?.[1];
          if (id) out.set(id, at);
        }
        return out;
      };
    },
    someDumps(limit) {
      const buf = Buffer.alloc(16_384);
      return readdirSync(dumpDir)
        .slice(0, limit)
        .map((name) => {
          const fd = openSync(join(dumpDir, name), 'r');
          const n = readSync(fd, buf, 0, buf.length, 0);
          closeSync(fd);
          return buf.toString('latin1', 0, n);
        });
    },
    clearDumps() {
      for (const name of readdirSync(dumpDir)) rmSync(join(dumpDir, name), { force: true });
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dumpDir, { recursive: true, force: true });
    },
  };
}

export interface SourceRun {
  sessions: number;
  messages: number;
  bytes: number;
  recipients: number;
}

/** Run smtp-source against 127.0.0.1:port; resolves when it exits (all messages accepted), rejects if any was refused. */
export function runSmtpSource(port: number, run: SourceRun): Promise<void> {
  const args = [
    '-s',
    String(run.sessions),
    '-m',
    String(run.messages),
    '-l',
    String(run.bytes),
    '-r',
    String(run.recipients),
    '-f',
    SENDER,
    '-t',
    sourceRecipient(1),
    '-M',
    'client.sender.test',
    `127.0.0.1:${port}`,
  ];
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn('smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`smtp-source ${args.join(' ')} exited ${code}: ${err}`)),
    );
  });
}

/**
 * The same load as runSmtpSource (`sessions` at once, a new connection per
 * message, `recipients` per message) from this process, for messages
 * smtp-source cannot write: `message(n)` is message number n (CRLF lines,
 * dot-stuffed already). Rejects if any message is refused.
 */
export async function runMessageSource(
  port: number,
  run: {
    sessions: number;
    messages: number;
    recipients: number;
    sender: string;
    message: (n: number) => string;
  },
): Promise<void> {
  let next = 0;
  const rcpts = Array.from({ length: run.recipients }, (_, i) => `RCPT TO:<${sourceRecipient(i + 1)}>`);
  const worker = async () => {
    for (let n = next++; n < run.messages; n = next++) {
      const replies = await smtpConversation(
        port,
        [
          'EHLO client.sender.test',
          `MAIL FROM:<${run.sender}>`,
          ...rcpts,
          'DATA',
          { raw: `${run.message(n)}.\r\n` },
          'QUIT',
        ],
        { timeoutMs: 120_000 },
      );
      const final = replies[rcpts.length + 4];
      if (!final?.startsWith('250')) throw new Error(`message ${n} not accepted: ${replies.join(' | ')}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(run.sessions, run.messages) }, worker));
}

/** runMessageSource in a worker thread (message-source-worker.ts) with the signing variants' messages. */
export function runSignedSource(job: import('./message-source-worker.ts').MessageSourceJob): Promise<void> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./message-source-worker.ts', import.meta.url), { workerData: job });
    let done = false;
    worker.once('message', () => {
      done = true;
    });
    worker.once('error', reject);
    worker.once('exit', (code) =>
      done ? resolve() : reject(new Error(`message source worker exited ${code} before it was done`)),
    );
  });
}

function probeMessage(id: string, bytes: number, from: string): string {
  const line = `${'y'.repeat(76)}\r\n`;
  return (
    `From: <${from}>\r\nTo: <${sourceRecipient(1)}>\r\nSubject: probe ${id}\r\n` +
    `Message-ID: <${id}@sender.test>\r\nX-Bench-Probe: ${id}\r\n\r\n${line.repeat(Math.ceil(bytes / line.length))}`
  );
}

/**
 * The light-load probe: `count` messages offered at `rate` per second, each
 * on its own connection; per message the time from the 250 after its final
 * dot to its arrival at the sink, in ms (sorted).
 */
export async function latencyProbe(
  port: number,
  sink: Sink,
  o: { count: number; rate: number; bytes: number; tag: string; sender?: string; from?: string },
): Promise<number[]> {
  sink.clearDumps();
  const before = sink.count();
  const arrivalsOf = sink.watchArrivals();
  const accepted = new Map<string, number>();
  const t0 = performance.now();
  const sends: Promise<void>[] = [];
  for (let i = 0; i < o.count; i++) {
    const due = t0 + (i * 1000) / o.rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const id = `${o.tag}-${i}`;
    sends.push(
      smtpConversation(port, [
        'EHLO client.sender.test',
        `MAIL FROM:<${o.sender ?? SENDER}>`,
        `RCPT TO:<${sourceRecipient(1)}>`,
        'DATA',
        { raw: `${probeMessage(id, o.bytes, o.from ?? SENDER)}.\r\n` },
        { action: () => void accepted.set(id, now()) },
        'QUIT',
      ]).then((replies) => {
        if (!replies[5]?.startsWith('250'))
          throw new Error(`probe ${id} not accepted: ${replies.join(' | ')}`);
      }),
    );
  }
  await Promise.all(sends);
  await sink.waitForCount(before + o.count, 60_000);
  const arrivals = arrivalsOf();
  const latencies: number[] = [];
  for (const [id, at] of accepted) {
    const arrived = arrivals.get(id);
    if (arrived === undefined) throw new Error(`probe ${id} accepted but not found at the sink`);
    latencies.push(arrived - at);
  }
  sink.clearDumps();
  return latencies.sort((a, b) => a - b);
}
