/**
 * The bus' own view of the configuration: connection settings and the limits
 * that shape streams, consumers and publishes, in milliseconds and bytes.
 * `busConfigFrom` derives it from the resolved Sluice config so every service
 * declares the same topology; the only derived value worth a note is the work
 * streams' max_age, queueLifetime + retentionMargin, so JetStream never ages
 * out a message the egress is still allowed to retry.
 */
import type { SluiceConfig } from '@sluice/config';

/** Dead letters stay this long: long enough for an operator to notice and replay. */
export const DEAD_LETTER_RETENTION_MS = 30 * 86_400_000;

export interface BusConfig {
  /** Connection name shown by the server's monitoring (e.g. "sluice-egress@host-123"). */
  name: string;
  /** NATS server URLs (nats://host:port). */
  servers: string[];
  user?: string;
  password?: string;
  token?: string;
  /** Wait for the first connection instead of failing fast when no server is up yet. */
  waitOnFirstConnect?: boolean;
  /** JetStream replicas of every stream, bucket and object store (1 locally, 3 in a cluster). */
  replicas: number;
  /** Bodies up to this size travel inline (also bounded by the server's max_payload). */
  inlineMaxBytes: number;
  /** max_age of the work streams, the ledger and the body store: queueLifetime + retentionMargin. */
  workMaxAgeMs: number;
  /** JetStream duplicate window for Nats-Msg-Id dedup. */
  duplicateWindowMs: number;
  /** max_age of the filter's greylist bucket: how long a passed triplet stays allowed. */
  greylistTtlMs: number;
  /** How long a stage may hold a message before JetStream redelivers it. */
  ackWaitMs: number;
  /** Deliveries of one message to a stage before the bus dead-letters it. */
  maxDeliver: number;
  /** How long to wait for a PubAck. */
  publishTimeoutMs: number;
  /** Size cap of each work stream in bytes, -1 for its share of the store budget; full streams refuse new messages. */
  maxBytesPerStream: number;
  /** JetStream bytes Sluice may use (divided by store-budget.ts); 0: automatic (see there). */
  storeBudgetBytes: number;
  /** With an automatic budget and the embedded server: the fraction of the store disk's free space. */
  storeFreeSpaceFraction: number;
  /** Free-space guard: refuse new mail when less than this is left (store disk or budget). */
  storeMinFreeBytes: number;
  /** The embedded server's JetStream store directory (the guard watches its disk); unset for remote NATS. */
  storeDir?: string;
  /** Stages in one process hand messages to each other without NATS where safe (in-process-handover.ts). */
  inProcessHandover: boolean;
  /** How long timeline events are kept. */
  eventsRetentionMs: number;
  /** How long dead letters are kept. */
  deadRetentionMs: number;
}

const SECOND = 1000;

/** The bus settings of a resolved Sluice config; `name` identifies the client connection. */
export function busConfigFrom(config: SluiceConfig, name: string): BusConfig {
  const { nats, bus, events } = config;
  const servers =
    nats.servers.length > 0 ? nats.servers : [`nats://${nats.embedded.host}:${nats.embedded.port}`];
  return {
    name,
    servers,
    user: nats.user,
    password: nats.password,
    token: nats.token,
    replicas: nats.replicas,
    inlineMaxBytes: bus.inlineMaxBytes,
    workMaxAgeMs: (bus.queueLifetime + bus.retentionMargin) * SECOND,
    duplicateWindowMs: bus.duplicateWindow * SECOND,
    greylistTtlMs: config.filter.greylist.ttl * SECOND,
    ackWaitMs: bus.ackWait * SECOND,
    maxDeliver: bus.maxDeliver,
    publishTimeoutMs: bus.publishTimeout * SECOND,
    maxBytesPerStream: bus.maxBytesPerStream,
    storeBudgetBytes: bus.store.budget,
    storeFreeSpaceFraction: bus.store.freeSpaceFraction,
    storeMinFreeBytes: bus.store.minFreeBytes,
    inProcessHandover: bus.inProcessHandover,
    eventsRetentionMs: events.retention * SECOND,
    deadRetentionMs: DEAD_LETTER_RETENTION_MS,
  };
}

/**
 * A BusConfig with the schema's defaults for everything not given (tests, CLI
 * tools that talk to a known server).
 */
export function defaultBusConfig(overrides: Partial<BusConfig> & Pick<BusConfig, 'servers'>): BusConfig {
  return {
    name: 'sluice',
    replicas: 1,
    inlineMaxBytes: 256 * 1024,
    workMaxAgeMs: 7 * 86_400_000,
    duplicateWindowMs: 1200 * SECOND,
    greylistTtlMs: 36 * 86_400_000,
    ackWaitMs: 60 * SECOND,
    maxDeliver: 50,
    publishTimeoutMs: 10 * SECOND,
    maxBytesPerStream: -1,
    storeBudgetBytes: 0,
    storeFreeSpaceFraction: 0.5,
    storeMinFreeBytes: 64 * 1024 * 1024,
    inProcessHandover: true,
    eventsRetentionMs: 7 * 86_400_000,
    deadRetentionMs: DEAD_LETTER_RETENTION_MS,
    ...overrides,
  };
}
