/**
 * The SMTP clients of the MX benchmark (bench/ingress.ts), on raw sockets so
 * the client costs little beside the server it measures:
 *
 * - runSessions: `connections` clients, each doing whole sessions in a loop
 *   for `seconds` — connect, greeting, EHLO, MAIL, RCPT, DATA, a small
 *   message, QUIT — one command at a time (no pipelining), as a sending MTA
 *   with one message per connection does. Counts sessions whose message got
 *   250 and sessions that failed (any other reply, a reset, a timeout).
 * - holdSessions: `count` sessions opened and kept idle after EHLO, to
 *   measure what one held session costs the server.
 */
import { connect, type Socket } from 'node:net';

export interface SessionRun {
  connections: number;
  seconds: number;
  /** Sessions whose message was accepted (250 after the final dot). */
  sessions: number;
  failed: number;
  sessionsPerSecond: number;
  /** The first failure's last reply or error, to tell why. */
  firstFailure?: string;
}

/** Reads one SMTP reply at a time from a socket (RFC 5321 §4.2.1 multi-line replies joined). */
class ReplyReader {
  private buffer = '';
  private pending: Array<(line: string) => void> = [];
  private ready: string[] = [];
  private closedWith: string | undefined;

  constructor(socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buffer += d;
      for (let nl = this.buffer.indexOf('\r\n'); nl >= 0; nl = this.buffer.indexOf('\r\n')) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 2);
        if (/^\d{3}(?: |$)/.test(line)) this.deliver(line);
      }
    });
    const close = (why: string) => {
      this.closedWith ??= why;
      for (const p of this.pending.splice(0)) p(this.closedWith);
    };
    socket.on('error', (err) => close(`error ${err.message}`));
    socket.on('close', () => close('closed'));
  }

  private deliver(line: string): void {
    const p = this.pending.shift();
    if (p) p(line);
    else this.ready.push(line);
  }

  next(): Promise<string> {
    const r = this.ready.shift();
    if (r !== undefined) return Promise.resolve(r);
    if (this.closedWith) return Promise.resolve(this.closedWith);
    return new Promise((resolve) => this.pending.push(resolve));
  }
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

export interface SessionScript {
  helo: string;
  from: string;
  to: string;
  /** Message number n (CRLF line ends, dot-stuffed), without the final dot line; each must differ (the MX drops duplicates). */
  message: (n: number) => string;
}

/** One whole session; resolves with undefined when the message was accepted, else what went wrong. */
async function oneSession(port: number, s: SessionScript, n: number): Promise<string | undefined> {
  let socket: Socket;
  try {
    socket = await open(port);
  } catch (err) {
    return `connect: ${(err as Error).message}`;
  }
  const replies = new ReplyReader(socket);
  const step = async (
    what: string,
    line: string | undefined,
    expect: string,
  ): Promise<string | undefined> => {
    if (line !== undefined) socket.write(line);
    const r = await replies.next();
    return r.startsWith(expect) ? undefined : `${what}: ${r}`;
  };
  try {
    return (
      (await step('greeting', undefined, '220')) ??
      (await step('EHLO', `EHLO ${s.helo}\r\n`, '250')) ??
      (await step('MAIL', `MAIL FROM:<${s.from}>\r\n`, '250')) ??
      (await step('RCPT', `RCPT TO:<${s.to}>\r\n`, '250')) ??
      (await step('DATA', 'DATA\r\n', '354')) ??
      (await step('message', `${s.message(n)}.\r\n`, '250')) ??
      (await step('QUIT', 'QUIT\r\n', '221'))
    );
  } finally {
    socket.destroy();
  }
}

/** Numbers the messages of every run of this process (their Message-IDs must all differ). */
let messageNumber = 0;

export async function runSessions(
  port: number,
  o: { connections: number; seconds: number; script: SessionScript },
): Promise<SessionRun> {
  let sessions = 0;
  let failed = 0;
  let firstFailure: string | undefined;
  const started = performance.now();
  const until = started + o.seconds * 1000;
  const client = async () => {
    while (performance.now() < until) {
      const problem = await oneSession(port, o.script, messageNumber++);
      if (problem === undefined) sessions++;
      else {
        failed++;
        firstFailure ??= problem;
      }
    }
  };
  await Promise.all(Array.from({ length: o.connections }, client));
  const seconds = (performance.now() - started) / 1000;
  return {
    connections: o.connections,
    seconds,
    sessions,
    failed,
    sessionsPerSecond: sessions / seconds,
    ...(firstFailure ? { firstFailure } : {}),
  };
}

export interface HeldSessions {
  /** Sessions that got 250 to EHLO and are open. */
  held: number;
  /** Of those, still open now (not closed by the server). */
  open(): number;
  close(): void;
}

/** Open `count` sessions (up to 50 connecting at once), EHLO on each, and keep them idle. */
export async function holdSessions(port: number, count: number, helo: string): Promise<HeldSessions> {
  const sockets: Socket[] = [];
  const alive = new Set<Socket>();
  let next = 0;
  const opener = async () => {
    while (next < count) {
      next++;
      let socket: Socket;
      try {
        socket = await open(port);
      } catch {
        continue;
      }
      const replies = new ReplyReader(socket);
      const greeting = await replies.next();
      if (!greeting.startsWith('220')) {
        socket.destroy();
        continue;
      }
      socket.write(`EHLO ${helo}\r\n`);
      if (!(await replies.next()).startsWith('250')) {
        socket.destroy();
        continue;
      }
      sockets.push(socket);
      alive.add(socket);
      socket.once('close', () => alive.delete(socket));
    }
  };
  await Promise.all(Array.from({ length: Math.min(50, count) }, opener));
  return {
    held: sockets.length,
    open: () => alive.size,
    close: () => {
      for (const s of sockets) s.destroy();
    },
  };
}
