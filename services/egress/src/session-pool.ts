/**
 * SMTP/LMTP sessions kept open per destination and reused for the next
 * message, as Postfix's connection cache does: a new session costs a TCP
 * handshake, the greeting (which many servers delay on purpose), EHLO and
 * possibly STARTTLS, before the first byte of mail; a reused one costs none
 * of that. RFC 5321 §3.3 lets a client send any number of transactions in one
 * session.
 *
 * A destination is one host and port spoken to the same way (SMTP or LMTP,
 * TLS name). Per destination:
 *   - at most `maxPerDestination` sessions are open (in use or idle); a
 *     delivery that finds them all busy waits for one (first come, first
 *     served), like Postfix's destination concurrency limit;
 *   - an idle session is closed after `idleTimeoutMs` (QUIT), and no session
 *     is reused once it is older than `maxAgeMs`;
 *   - a session comes back to the pool only in the initial state: after a
 *     transaction that did not end in a 2xx for everyone, RSET first (RFC 5321
 *     §4.1.1.5), and a session that failed it, or that the server closed
 *     (421, a dropped connection), is closed instead.
 *
 * The newest idle session is taken first, so surplus sessions age out. A
 * server may still close an idle session just as it is taken; the delivery
 * then sees a lost connection and is deferred like any other, which the short
 * idle time keeps rare.
 */
import type { Candidate } from './destination.ts';
import { type SessionOptions, SmtpSession } from './smtp-session.ts';

/** Sessions older than this are not reused (Postfix smtp_connection_reuse_time_limit). */
export const SESSION_MAX_AGE_MS = 300_000;

export interface SessionPoolOptions {
  maxPerDestination: number;
  /** How long an idle session is kept; 0 closes every session after its delivery. */
  idleTimeoutMs: number;
  maxAgeMs?: number;
}

/** Opens a session (SmtpSession.open; tests may count the calls). */
export type SessionOpener = (candidate: Candidate, options: SessionOptions) => Promise<SmtpSession>;

interface Idle {
  session: SmtpSession;
  since: number;
}

interface Destination {
  /** Sessions open, in use or idle. */
  open: number;
  idle: Idle[];
  waiting: Array<() => void>;
}

export class SessionPool {
  readonly #opts: Required<SessionPoolOptions>;
  readonly #open: SessionOpener;
  readonly #destinations = new Map<string, Destination>();
  readonly #opened = new WeakMap<SmtpSession, { key: string; at: number }>();
  #sweeper: ReturnType<typeof setInterval> | null = null;
  #closed = false;

  constructor(opts: SessionPoolOptions, open: SessionOpener = (c, o) => SmtpSession.open(c, o)) {
    if (!Number.isInteger(opts.maxPerDestination) || opts.maxPerDestination < 1) {
      throw new RangeError(`maxPerDestination must be a positive integer, got ${opts.maxPerDestination}`);
    }
    this.#opts = { maxAgeMs: SESSION_MAX_AGE_MS, ...opts };
    this.#open = open;
  }

  /** Sessions open to this candidate's destination (in use or idle), and how many are idle. */
  stats(candidate: Candidate, options: SessionOptions): { open: number; idle: number } {
    const d = this.#destinations.get(keyOf(candidate, options));
    return { open: d?.open ?? 0, idle: d?.idle.length ?? 0 };
  }

  /** An idle session to this destination, or a new one; rejects as SmtpSession.open does. */
  async acquire(candidate: Candidate, options: SessionOptions): Promise<SmtpSession> {
    const key = keyOf(candidate, options);
    const d = this.#destination(key);
    for (;;) {
      const reused = this.#takeIdle(d);
      if (reused) return reused;
      if (d.open < this.#opts.maxPerDestination || this.#closed) break;
      await new Promise<void>((resolve) => d.waiting.push(resolve));
    }
    d.open++;
    try {
      const session = await this.#open(candidate, options);
      this.#opened.set(session, { key, at: Date.now() });
      return session;
    } catch (err) {
      this.#gone(d);
      throw err;
    }
  }

  /**
   * Give a session back after a delivery. `clean`: every transaction on it ended with a 2xx, so
   * it is in the initial state; otherwise it is reset first. Never throws.
   */
  release(session: SmtpSession, clean: boolean): void {
    const origin = this.#opened.get(session);
    const d = origin && this.#destinations.get(origin.key);
    if (!origin || !d) {
      session.close(); // not one of ours
      return;
    }
    const keep = () =>
      !this.#closed &&
      this.#opts.idleTimeoutMs > 0 &&
      session.usable &&
      Date.now() - origin.at < this.#opts.maxAgeMs;
    if (!keep()) {
      session.close();
      this.#gone(d);
      return;
    }
    const park = (ok: boolean) => {
      if (!ok || !keep()) {
        session.close();
        this.#gone(d);
        return;
      }
      d.idle.push({ session, since: Date.now() });
      this.#startSweeper();
      d.waiting.shift()?.();
    };
    if (clean) park(true);
    else void session.reset().then(park, () => park(false));
  }

  /** Close every idle session and stop reusing (sessions in use are closed when released). */
  close(): void {
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = null;
    for (const d of this.#destinations.values()) {
      for (const { session } of d.idle.splice(0)) {
        session.close();
        d.open--;
      }
      for (const w of d.waiting.splice(0)) w();
    }
  }

  #destination(key: string): Destination {
    let d = this.#destinations.get(key);
    if (!d) {
      d = { open: 0, idle: [], waiting: [] };
      this.#destinations.set(key, d);
    }
    return d;
  }

  #takeIdle(d: Destination): SmtpSession | undefined {
    for (let idle = d.idle.pop(); idle; idle = d.idle.pop()) {
      const origin = this.#opened.get(idle.session);
      if (idle.session.usable && origin && Date.now() - origin.at < this.#opts.maxAgeMs) return idle.session;
      idle.session.close();
      d.open--;
    }
    return undefined;
  }

  /** A session of `d` is closed: its slot goes to the next waiting delivery. */
  #gone(d: Destination): void {
    d.open--;
    d.waiting.shift()?.();
  }

  #startSweeper(): void {
    if (this.#sweeper) return;
    const every = Math.max(50, Math.min(1000, Math.floor(this.#opts.idleTimeoutMs / 2)));
    this.#sweeper = setInterval(() => this.#sweep(), every);
    this.#sweeper.unref();
  }

  /** Close sessions idle longer than the idle timeout (QUIT); stop sweeping when none is idle. */
  #sweep(): void {
    const cutoff = Date.now() - this.#opts.idleTimeoutMs;
    let idleLeft = 0;
    for (const d of this.#destinations.values()) {
      // Oldest first: d.idle is in the order sessions were parked.
      while (d.idle.length > 0 && (d.idle[0]!.since <= cutoff || !d.idle[0]!.session.usable)) {
        d.idle.shift()!.session.close();
        this.#gone(d);
      }
      idleLeft += d.idle.length;
    }
    if (idleLeft === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = null;
    }
  }
}

/** One destination: where, how (SMTP or LMTP, TLS name) and with which session settings. */
function keyOf(c: Candidate, o: SessionOptions): string {
  return JSON.stringify([
    c.host,
    c.port,
    c.lmtp,
    c.servername ?? '',
    o.heloName,
    o.requireTls,
    o.ignoreTlsErrors,
    o.policyKey ?? '',
    o.ca ? 'ca' : '',
  ]);
}
