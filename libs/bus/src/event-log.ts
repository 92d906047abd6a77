/**
 * The per-message timeline: each stage's decisions as JSON events on
 * `sluice.v1.events.<queueId>` (limits-retention stream), read back in order
 * by `sluice trace`. Recording is best effort by contract: a lost event is
 * logged and counted, never a reason to fail or delay mail, so record() never
 * throws.
 *
 * Nor does it hold the message path (docs/decisions/0010): an event is
 * published with a reply subject on one shared inbox subscription and record()
 * returns once it is handed to the connection; the PubAck arrives on that
 * inbox later. Events awaiting their PubAck form a bounded window
 * (EVENT_WINDOW): record() waits only when the window is full (the server is
 * slow or gone), so memory stays bounded and nothing is dropped for being
 * fast. An event without a PubAck within the publish timeout, or with an error
 * PubAck, is lost: logged and counted (sluice_timeline_events_lost_total).
 * During an outage record() waits for the connection (up to the same
 * timeout), since the client discards what is written while disconnected.
 *
 * Events of one message recorded in the same event-loop turn go out as one
 * NATS message (a JSON array, in the order recorded): under `sluice run` the
 * resolver's and the rewriter's events of a part handed over in process
 * (decision 0046) are one stored message instead of two. Readers flatten
 * (queue-inspection.ts `readTimeline`). The window, PubAck and loss counting
 * are per NATS message; a lost batch counts each of its events.
 *
 * Order: events go out in the order recorded on this connection, and the
 * server stores a connection's messages in order; across processes a stage's
 * event is published after the message it is about reached it, so on one
 * server the timeline reads in order. In a cluster two events of consecutive
 * stages recorded within a few milliseconds may be stored in swapped order
 * (each carries its own `at`).
 */
import {
  createInbox,
  type Msg,
  type NatsConnection,
  headers as natsHeaders,
  type Subscription,
} from '@nats-io/transport-node';
import { headerNames, type SluiceEvent, subjects } from '@sluice/proto';
import type { BusLog } from './bus-log.ts';
import type { NatsOperations } from './nats-operations.ts';
import type { WaitForConnection } from './publish.ts';
import { injectTraceHeaders } from './trace-headers.ts';

/** Value of the Sluice-Content header on timeline events. */
export const EVENT_CONTENT = 'event/v1';

/** Events published and not yet acknowledged by the stream, at most. */
export const EVENT_WINDOW = 1024;

/** Queue ids become a subject token: refuse anything that could be a wildcard or a separator. */
const SUBJECT_TOKEN = /^[0-9A-Za-z_-]{1,64}$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface InFlight {
  queueId: string;
  kind: string;
  /** Events in this NATS message (a batch counts each when lost). */
  events: number;
  sentAt: number;
}

/** Events of one queue id waiting for the end of this event-loop turn. */
interface Pending {
  events: SluiceEvent[];
  /** Trace headers of the first event (the batch travels in its context). */
  headers: ReturnType<typeof natsHeaders>;
}

export interface EventLogOptions {
  /** How long an event may wait for its PubAck before it counts as lost. */
  timeoutMs: number;
  ready?: WaitForConnection;
  /** Events awaiting their PubAck, at most (default EVENT_WINDOW). */
  window?: number;
}

export class EventLog {
  readonly #nc: NatsConnection;
  readonly #log: BusLog;
  readonly #ops: NatsOperations;
  readonly #timeoutMs: number;
  readonly #ready?: WaitForConnection;
  readonly #window: number;
  readonly #inbox = createInbox();
  readonly #inFlight = new Map<number, InFlight>();
  readonly #slotWaiters: Array<() => void> = [];
  #idleWaiters: Array<() => void> = [];
  #sub: Subscription | null = null;
  #sweeper: ReturnType<typeof setInterval> | null = null;
  #next = 0;
  #closed = false;
  /** Events recorded in this turn, by queue id, published together at its end. */
  readonly #pending = new Map<string, Pending>();
  #flushScheduled = false;

  constructor(nc: NatsConnection, log: BusLog, ops: NatsOperations, opts: EventLogOptions) {
    this.#nc = nc;
    this.#log = log;
    this.#ops = ops;
    this.#timeoutMs = opts.timeoutMs;
    this.#ready = opts.ready;
    this.#window = opts.window ?? EVENT_WINDOW;
  }

  /** Event messages published or about to be (this turn's) and not yet acknowledged (or timed out). */
  get inFlight(): number {
    return this.#inFlight.size + this.#pending.size;
  }

  /**
   * Publish one event; resolves once it is queued for this turn's publish (events of one message
   * recorded in the same turn share a NATS message). Never throws.
   */
  async record(event: SluiceEvent): Promise<void> {
    try {
      if (!SUBJECT_TOKEN.test(event.queueId)) {
        throw new Error(`queue id ${JSON.stringify(event.queueId)} is not a valid subject token`);
      }
      // A message of this turn counts toward the window as soon as it is begun.
      while (!this.#pending.has(event.queueId) && this.inFlight >= this.#window && !this.#closed) {
        await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
      }
      if (this.#closed) {
        this.#ops.eventLost('closed');
        this.#log.warn({ queueId: event.queueId, kind: event.kind }, 'timeline event lost: bus closed');
        return;
      }
      if (this.#ready && !(await this.#ready(this.#timeoutMs))) {
        throw new Error(`NATS disconnected for ${this.#timeoutMs} ms`);
      }
      this.#start();
      const pending = this.#pending.get(event.queueId);
      if (pending) pending.events.push(event);
      else this.#pending.set(event.queueId, { events: [event], headers: injectTraceHeaders(natsHeaders()) });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    } catch (err) {
      this.#ops.eventLost('error');
      this.#log.warn({ queueId: event.queueId, kind: event.kind, err }, 'timeline event lost');
    }
  }

  /** Publish what this turn recorded: one NATS message per queue id. */
  #flush(): void {
    this.#flushScheduled = false;
    for (const [queueId, { events, headers }] of this.#pending) {
      // In time order (`at`): a stage may record an earlier moment after a later stage's event.
      if (events.length > 1) events.sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));
      const first = events[0]!;
      try {
        const data = encoder.encode(JSON.stringify(events.length === 1 ? first : events));
        headers.set(headerNames.contentType, EVENT_CONTENT);
        const token = ++this.#next;
        this.#inFlight.set(token, {
          queueId,
          kind: events.map((e) => e.kind).join('+'),
          events: events.length,
          sentAt: performance.now(),
        });
        this.#ops.count('publish_event', first.stage);
        this.#nc.publish(subjects.event(queueId), data, { headers, reply: `${this.#inbox}.${token}` });
      } catch (err) {
        this.#ops.eventLost('error', events.length);
        this.#log.warn({ queueId, kind: first.kind, events: events.length, err }, 'timeline event lost');
      }
    }
    this.#pending.clear();
  }

  /** Resolves when every event published so far has its PubAck or has timed out. */
  settle(): Promise<void> {
    if (this.#pending.size > 0) this.#flush();
    if (this.#inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stop listening for PubAcks (after settle(), on close); events still unacknowledged count as lost. */
  close(): void {
    for (const { events } of this.#pending.values()) this.#ops.eventLost('closed', events.length);
    this.#pending.clear();
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = null;
    this.#sub?.unsubscribe();
    this.#sub = null;
    for (const [token, entry] of [...this.#inFlight]) {
      this.#ops.eventLost('closed', entry.events);
      this.#release(token);
    }
    for (const wake of this.#slotWaiters.splice(0)) wake();
  }

  /** The inbox subscription and the timeout sweep, on first use. */
  #start(): void {
    if (this.#sub) return;
    this.#sub = this.#nc.subscribe(`${this.#inbox}.*`, { callback: (_err, msg) => this.#onPubAck(msg) });
    const every = Math.max(10, Math.min(1000, Math.floor(this.#timeoutMs / 4)));
    this.#sweeper = setInterval(() => this.#sweep(), every);
    this.#sweeper.unref();
  }

  #onPubAck(msg: Msg): void {
    const token = Number(msg.subject.slice(this.#inbox.length + 1));
    const entry = this.#inFlight.get(token);
    if (!entry) return; // already counted as timed out
    // A 503 status without data means no stream listens on the subject (JetStream down, topology missing).
    const noResponders = msg.data.length === 0 && msg.headers?.code === 503;
    const error = noResponders ? 'no stream for timeline events' : pubAckError(msg.data);
    if (error) {
      this.#ops.eventLost('error', entry.events);
      this.#log.warn({ queueId: entry.queueId, kind: entry.kind, error }, 'timeline event lost');
    }
    this.#release(token);
  }

  #sweep(): void {
    const cutoff = performance.now() - this.#timeoutMs;
    for (const [token, entry] of this.#inFlight) {
      if (entry.sentAt > cutoff) break; // insertion order is send order
      this.#ops.eventLost('timeout', entry.events);
      this.#log.warn(
        { queueId: entry.queueId, kind: entry.kind, timeoutMs: this.#timeoutMs },
        'timeline event lost: no PubAck in time',
      );
      this.#release(token);
    }
  }

  #release(token: number): void {
    this.#inFlight.delete(token);
    this.#slotWaiters.shift()?.();
    if (this.#inFlight.size === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

/** The error of a PubAck (`{"error":{"code":..,"description":..}}`), or undefined for a stored message. */
function pubAckError(data: Uint8Array): string | undefined {
  let ack: { error?: { description?: string; code?: number } };
  try {
    ack = JSON.parse(decoder.decode(data));
  } catch {
    return 'unreadable PubAck';
  }
  if (!ack.error) return undefined;
  return `${ack.error.code ?? ''} ${ack.error.description ?? 'error'}`.trim();
}
