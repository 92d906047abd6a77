/**
 * The life of an SMTP service's listeners, shared by the MX and the
 * submission service: handing each accepted session from our front to
 * smtp-server's handlers (SessionHandoff), binding every front or none
 * (listenAll), and the drain on stop (drainSessions, RFC 5321 §3.8: idle
 * sessions get 421 at once, sessions in a transaction finish it and get 421
 * after their reply, and whatever is left at the deadline is cut).
 */
import type { AddressInfo, Server } from 'node:net';
import type { SMTPServer } from 'smtp-server';
import type { SmtpConnectionHandle } from './enhanced-replies.ts';

/**
 * smtp-server's connection of a session, set up by the front before onConnect,
 * and the admission slot the front reserved for it: freed when smtp-server
 * closes the session (after STARTTLS the raw socket may never report its close).
 */
export class SessionHandoff {
  readonly #pending = new Map<string, SmtpConnectionHandle>();
  readonly #slots = new Map<string, () => void>();

  /** FrontOptions.onSession. */
  readonly onSession = (conn: unknown, release: () => void): void => {
    const c = conn as SmtpConnectionHandle & { id: string };
    this.#pending.set(c.id, c);
    this.#slots.set(c.id, release);
  };

  /** In onConnect: the session's connection (once). */
  take(sessionId: string): SmtpConnectionHandle | undefined {
    const conn = this.#pending.get(sessionId);
    this.#pending.delete(sessionId);
    return conn;
  }

  /** In onClose: free the admission slot. */
  closed(sessionId: string): void {
    this.#slots.get(sessionId)?.();
    this.#slots.delete(sessionId);
    this.#pending.delete(sessionId);
  }
}

export interface Listening<T> {
  fronts: Server[];
  /** Each spec with the port actually bound (port 0: the one the OS chose). */
  bound: Array<T & { port: number }>;
  close(): Promise<void>;
}

/**
 * Bind a front per spec; if one cannot listen, close those bound and throw naming the address.
 * `reusePort`: share the port with the other processes of `processes: N` (SO_REUSEPORT; the
 * kernel spreads connections over them).
 */
export async function listenAll<T extends { host: string; port: number }>(
  service: string,
  specs: readonly T[],
  frontFor: (spec: T) => Server,
  opts: { reusePort?: boolean } = {},
): Promise<Listening<T>> {
  const fronts: Server[] = [];
  const bound: Array<T & { port: number }> = [];
  const close = async () => {
    await Promise.all(fronts.map((f) => new Promise<void>((r) => f.close(() => r()))));
  };
  try {
    for (const spec of specs) {
      const front = frontFor(spec);
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error) =>
          reject(new Error(`${service} cannot listen on ${spec.host}:${spec.port}: ${err.message}`));
        front.once('error', onError);
        front.listen({ port: spec.port, host: spec.host, reusePort: opts.reusePort === true }, () => {
          front.off('error', onError);
          resolve();
        });
      });
      fronts.push(front);
      bound.push({ ...spec, port: (front.address() as AddressInfo).port });
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { fronts, bound, close };
}

/** Every open session of these servers. */
export function connectionsOf(servers: readonly SMTPServer[]): SmtpConnectionHandle[] {
  return servers.flatMap((s) => [...(s.connections as Set<unknown> as Set<SmtpConnectionHandle>)]);
}

/**
 * The drain (RFC 5321 §3.8): 421 now to every session not `busy`; wait up to
 * `timeoutMs` for the others to finish (the service says 421 after their
 * reply); then 421 and close whatever is left.
 */
export async function drainSessions(o: {
  connections: () => SmtpConnectionHandle[];
  busy: (conn: SmtpConnectionHandle) => boolean;
  say421: (conn: SmtpConnectionHandle) => void;
  timeoutMs: number;
}): Promise<void> {
  for (const c of o.connections()) if (!o.busy(c)) o.say421(c);
  const deadline = Date.now() + o.timeoutMs;
  while (o.connections().length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const c of o.connections()) {
    o.say421(c);
    c.close();
  }
}
