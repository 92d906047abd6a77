/**
 * Whether the NATS connection is up right now, and a way to wait until it is.
 * The client discards whatever was written while it was disconnected when it
 * redials (nats.js resets its outbound buffer), so a publish, API request or
 * ack sent during an outage is silently lost and only times out later. The
 * bus therefore waits for the connection (within the operation's deadline)
 * before sending anything whose loss would cost a timeout or a redelivery.
 * State changes are logged here too, and the time the connection went down is
 * kept, so liveness (/healthz) can fail once the bus has been gone for longer
 * than a grace period (http.healthBusGrace).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { BusLog } from './bus-log.ts';

export class ConnectionState {
  #connected = true;
  #closed = false;
  /** Date.now() when the connection was lost; undefined while connected. */
  #downSince: number | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(nc: NatsConnection, log: BusLog) {
    void this.#watch(nc, log);
    void nc.closed().then(() => {
      this.#closed = true;
      this.#connected = false;
      this.#downSince ??= Date.now();
      this.#wake();
    });
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** How long the connection has been down, ms (0 while connected). */
  downForMs(now = Date.now()): number {
    return this.#downSince === undefined ? 0 : now - this.#downSince;
  }

  /** Resolves true once connected (at once if connected), false on timeout or when closed. */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.#connected) return Promise.resolve(true);
    if (this.#closed || timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve(this.#connected);
      };
      const timer = setTimeout(done, timeoutMs);
      this.#waiters.add(done);
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  async #watch(nc: NatsConnection, log: BusLog): Promise<void> {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.#connected = false;
          this.#downSince ??= Date.now();
          log.warn({ server: s.server }, 'NATS connection lost; reconnecting');
          break;
        case 'reconnect':
          this.#connected = true;
          this.#downSince = undefined;
          log.info({ server: s.server }, 'NATS connection restored');
          this.#wake();
          break;
        case 'ldm':
          log.warn({ server: s.server }, 'NATS server entering lame duck mode');
          break;
        case 'error':
          log.error({ err: s.error }, 'NATS connection error');
          break;
        case 'slowConsumer':
          log.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'NATS slow consumer');
          break;
        default:
          break;
      }
    }
  }
}
