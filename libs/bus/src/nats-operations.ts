/**
 * What the bus costs in NATS terms: every operation it makes, counted by kind
 * and by the stage it was made for, and the round trips a message waited on
 * one after another. The counts are kept in process (tests read them with
 * `snapshot()`) and exported as Prometheus counters by the runtime
 * (sluice_nats_operations_total{kind,stage}, sluice_nats_round_trips_total{stage}).
 *
 * A round trip is an operation whose reply the caller awaits (a durable
 * publish's PubAck, a request's reply, a KV read). Inside a message path (one
 * stage's handling of one message: a consumer handler, an RPC handler, the
 * ingress' intake) the awaited operations are timed, and when the path ends
 * its round trips are the longest chain of operations each started after the
 * previous one ended: two publishes awaited together count once, an event
 * published without waiting counts zero. An awaited operation outside any
 * path is one round trip by itself. Paths travel with the async context
 * (AsyncLocalStorage), so handlers need not pass anything along.
 *
 * The per-message budget (docs/decisions/0010) is asserted against these counts.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** The NATS operations the bus makes. */
export type NatsOperationKind =
  /** A JetStream publish whose PubAck is awaited (envelopes, dead letters). */
  | 'publish_durable'
  /** A timeline event, published without holding the message path (PubAck counted asynchronously). */
  | 'publish_event'
  /** A one-way write into the events stream without a PubAck (the ingress' dedup index note). */
  | 'publish_note'
  /** An ack the server confirms (a round trip). */
  | 'ack_confirmed'
  /** A plain ack (one-way). */
  | 'ack'
  | 'nak'
  /** A core NATS request (RPC) whose reply is awaited. */
  | 'request'
  /** The answer of an RPC server (one-way). */
  | 'reply'
  | 'kv_get'
  | 'kv_put'
  | 'object_put'
  | 'object_get'
  | 'object_delete'
  /** A pull request for a consumer's next messages (batched, not per message). */
  | 'pull'
  /** "Still working" on a message (extends its ack deadline during a long delivery). */
  | 'working'
  /** A JetStream API call outside the message path (binding to a consumer, reading a timeline). */
  | 'api'
  /**
   * Not a NATS operation: an envelope handed to its consumer in this process instead of a
   * durable publish (in-process-handover.ts), counted under the receiving stage.
   */
  | 'handover'
  /** Not a NATS operation: a request answered by a server in this process, under the requesting stage. */
  | 'local_request';

/** The stage label of operations made outside any service (CLI, tests, the runtime's own reads). */
export const NO_STAGE = 'none';

/** One stage's handling of one message: the awaited operations, as [start, end] times in ms. */
interface MessagePath {
  readonly stage: string;
  readonly awaited: Array<[number, number]>;
  open: boolean;
}

export interface NatsOperationCount {
  kind: NatsOperationKind;
  stage: string;
  count: number;
}

export interface NatsOperationsSnapshot {
  operations: NatsOperationCount[];
  roundTrips: Array<{ stage: string; count: number }>;
  /** Timeline events not stored (no PubAck in time, an error PubAck, or closed before it came), by reason. */
  eventsLost: Array<{ reason: string; count: number }>;
}

/** The longest chain of intervals each starting at or after the previous one's end (greedy by end time). */
export function sequentialCount(intervals: ReadonlyArray<readonly [number, number]>): number {
  let count = 0;
  let lastEnd = Number.NEGATIVE_INFINITY;
  for (const [start, end] of [...intervals].sort((a, b) => a[1] - b[1])) {
    if (start >= lastEnd) {
      count++;
      lastEnd = end;
    }
  }
  return count;
}

function bump(map: Map<string, number>, key: string, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

export class NatsOperations {
  /** `${kind} ${stage}` -> count */
  readonly #ops = new Map<string, number>();
  readonly #roundTrips = new Map<string, number>();
  readonly #eventsLost = new Map<string, number>();
  readonly #paths = new AsyncLocalStorage<MessagePath>();

  /** Count one operation that is not awaited on the message path (or whose wait is timed by `awaited`). */
  count(kind: NatsOperationKind, stage: string, n = 1): void {
    bump(this.#ops, `${kind} ${stage}`, n);
  }

  /** Count an operation and time its wait as a round trip of the current message path. */
  async awaited<T>(kind: NatsOperationKind, stage: string, op: () => Promise<T>): Promise<T> {
    this.count(kind, stage);
    const path = this.#paths.getStore();
    const start = performance.now();
    try {
      return await op();
    } finally {
      if (path?.open) path.awaited.push([start, performance.now()]);
      else if (!path) bump(this.#roundTrips, stage, 1);
    }
  }

  /** Run one stage's handling of one message as a path; its round trips are counted when it ends. */
  async path<T>(stage: string, fn: () => Promise<T>): Promise<T> {
    const path: MessagePath = { stage, awaited: [], open: true };
    try {
      return await this.#paths.run(path, fn);
    } finally {
      path.open = false;
      const n = sequentialCount(path.awaited);
      if (n > 0) bump(this.#roundTrips, stage, n);
    }
  }

  /** Note a timeline event that was not stored. */
  eventLost(reason: 'timeout' | 'error' | 'closed', n = 1): void {
    bump(this.#eventsLost, reason, n);
  }

  snapshot(): NatsOperationsSnapshot {
    return {
      operations: [...this.#ops].map(([key, count]) => {
        const [kind, stage] = key.split(' ') as [NatsOperationKind, string];
        return { kind, stage, count };
      }),
      roundTrips: [...this.#roundTrips].map(([stage, count]) => ({ stage, count })),
      eventsLost: [...this.#eventsLost].map(([reason, count]) => ({ reason, count })),
    };
  }
}
