/**
 * Declares the JetStream objects Sluice needs, idempotently, at start-up: the
 * streams and durable consumers named in proto/subjects.ts, the egress'
 * delivery ledger (KV) and the body store (object store). Every process calls
 * it, so it must be safe to run twice and from several processes at once:
 * "create" of an identical object succeeds, a lost creation race falls back to
 * compare-and-update, and an object that exists with other settings is
 * updated where JetStream allows it and reported (warning) where it does not
 * (retention and storage are fixed at creation).
 *
 * Only features of nats-server 2.9 are used: one filter_subject per consumer,
 * no per-message TTL, no metadata, no compression.
 *
 * Choices that protect accepted mail (see docs/decisions/0001):
 * - work streams: work-queue retention, file storage, discard NEW when full
 *   (publishers get an error and the ingress answers 452, instead of the
 *   stream silently deleting the oldest accepted message), max_age =
 *   queueLifetime + retentionMargin so nothing ages out while still retryable;
 * - consumers: explicit ack, max_deliver -1 on the server (the bus dead-letters
 *   at maxDeliver itself, so a poison message is never left stuck), and
 *   max_ack_pending -1: messages waiting out a nak delay count as ack-pending,
 *   so any finite cap would freeze a stage once that many mails are deferred;
 * - limits: every stream, the ledger bucket and the body store get max_bytes
 *   and max_msgs from their share of the store budget (store-budget.ts,
 *   docs/decisions/0008), so a work stream fills up (and refuses) long before
 *   the disk does, and never eats the ledger's room.
 */

import type { ConsumerConfig, StreamConfig } from '@nats-io/jetstream';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KvOptions } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import {
  authThrottleTtlMs,
  buckets,
  type ConsumerSpec,
  consumers,
  kvNames,
  objectStores,
  type StreamSpec,
  streams,
  submissionRateTtlMs,
} from '@sluice/proto';
import type { BusLog } from './bus-log.ts';
import type { BusConfig } from './config.ts';
import { SESSION_RATE_KEY_TTL_MS } from './session-rate-store.ts';
import {
  divideStoreBudget,
  REMOTE_DEFAULT_BUDGET,
  remoteStoreBudget,
  SAFE_DISCARD_NEW_BYTES_VERSION,
  type StoreLimits,
  type StoreObject,
  versionAtLeast,
} from './store-budget.ts';

/** JetStream's "stream name already in use with a different configuration". */
const STREAM_NAME_IN_USE = 10058;

export interface TopologyReport {
  created: string[];
  updated: string[];
  /** Differences that could not be applied (immutable settings); also logged. */
  warnings: string[];
  /** The limits every object was declared with. */
  limits: StoreLimits;
}

export type WantedStream = Pick<StreamConfig, 'name' | 'subjects'> & Partial<StreamConfig>;
export type WantedConsumer = Pick<ConsumerConfig, 'durable_name'> & Partial<ConsumerConfig>;

/** Stream settings fixed at creation (nats-server refuses to change them). */
const IMMUTABLE_STREAM_FIELDS: ReadonlySet<string> = new Set(['retention', 'storage']);
/** Consumer settings fixed at creation on nats-server 2.9. */
const IMMUTABLE_CONSUMER_FIELDS: ReadonlySet<string> = new Set([
  'ack_policy',
  'deliver_policy',
  'filter_subject',
  'replay_policy',
]);

/** The limits of `cfg` when no budget was resolved against a server (tests, tools). */
export function limitsOf(cfg: BusConfig): StoreLimits {
  return divideStoreBudget(cfg.storeBudgetBytes || REMOTE_DEFAULT_BUDGET, cfg.maxBytesPerStream);
}

const STREAM_SHARE: Record<string, StoreObject> = {
  [streams.resolve.name]: 'resolve',
  [streams.rewrite.name]: 'rewrite',
  [streams.deliver.name]: 'deliver',
  [streams.events.name]: 'events',
  [streams.dead.name]: 'dead',
};

/** The configuration a stream of Sluice should have. */
export function wantedStream(spec: StreamSpec, cfg: BusConfig, limits = limitsOf(cfg)): WantedStream {
  const share = limits[STREAM_SHARE[spec.name] ?? 'events'];
  // Discard-new streams get a byte cap only where the server enforces it safely (store-budget.ts).
  const discardsNew = spec.role === 'work' || spec.name === streams.dead.name;
  const base: WantedStream = {
    name: spec.name,
    subjects: [...spec.subjects],
    storage: 'file',
    num_replicas: cfg.replicas,
    max_bytes: discardsNew && !limits.bytesLimitSafe ? -1 : share.maxBytes,
    max_msgs: share.maxMsgs,
  };
  if (spec.role === 'work') {
    return {
      ...base,
      retention: 'workqueue',
      discard: 'new',
      max_age: nanos(cfg.workMaxAgeMs),
      duplicate_window: nanos(Math.min(cfg.duplicateWindowMs, cfg.workMaxAgeMs)),
    };
  }
  if (spec.name === streams.dead.name) {
    // Never drop a dead letter to make room: refuse the new one (the stage then naks and retries).
    return { ...base, retention: 'limits', discard: 'new', max_age: nanos(cfg.deadRetentionMs) };
  }
  // Direct gets (2.9+) let `sluice trace` read one message's events without creating a consumer.
  return {
    ...base,
    retention: 'limits',
    discard: 'old',
    max_age: nanos(cfg.eventsRetentionMs),
    allow_direct: true,
  };
}

/** The configuration of a stage's durable pull consumer. */
export function wantedConsumer(spec: ConsumerSpec, cfg: BusConfig): WantedConsumer {
  return {
    durable_name: spec.durable,
    ack_policy: 'explicit',
    deliver_policy: 'all',
    replay_policy: 'instant',
    filter_subject: spec.filterSubject,
    ack_wait: nanos(cfg.ackWaitMs),
    max_deliver: -1,
    max_ack_pending: -1,
  };
}

export interface ConfigDiff {
  /** Fields to change, with the wanted values. */
  changes: Record<string, unknown>;
  /** Human-readable differences in fields that cannot be changed. */
  fixed: string[];
}

/** Compare the fields we manage; `immutable` ones are reported instead of changed. */
export function diffConfig(
  wanted: Record<string, unknown>,
  actual: Record<string, unknown>,
  immutable: ReadonlySet<string>,
): ConfigDiff {
  const changes: Record<string, unknown> = {};
  const fixed: string[] = [];
  for (const [key, want] of Object.entries(wanted)) {
    const have = actual[key];
    if (sameValue(want, have)) continue;
    if (immutable.has(key)) fixed.push(`${key} is ${JSON.stringify(have)}, wanted ${JSON.stringify(want)}`);
    else changes[key] = want;
  }
  return { changes, fixed };
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
  }
  return a === b;
}

function isApiError(err: unknown, errCode: number): boolean {
  const api = (err as { apiError?: () => { err_code?: number } }).apiError;
  return typeof api === 'function' && api.call(err).err_code === errCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as Error).name ?? '';
  return /NotFound/.test(name) || /not found/i.test((err as Error).message ?? '');
}

async function ensureStream(
  jsm: JetStreamManager,
  wanted: WantedStream,
  report: TopologyReport,
  log: BusLog,
): Promise<void> {
  let actual: StreamConfig;
  try {
    actual = (await jsm.streams.info(wanted.name)).config;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await jsm.streams.add({ ...wanted });
      report.created.push(`stream ${wanted.name}`);
      return;
    } catch (addErr) {
      // Another process created it first, with settings that differ from ours: compare below.
      if (!isApiError(addErr, STREAM_NAME_IN_USE)) throw addErr;
      actual = (await jsm.streams.info(wanted.name)).config;
    }
  }
  await applyDiff(`stream ${wanted.name}`, wanted, actual, IMMUTABLE_STREAM_FIELDS, report, log, (changes) =>
    jsm.streams.update(wanted.name, changes),
  );
}

async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  wanted: WantedConsumer,
  report: TopologyReport,
  log: BusLog,
): Promise<void> {
  const durable = wanted.durable_name!;
  let actual: ConsumerConfig | undefined;
  try {
    actual = (await jsm.consumers.info(stream, durable)).config;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (!actual) {
    // Create-or-update: a concurrent identical creation is not an error.
    const info = await jsm.consumers.add(stream, { ...wanted });
    report.created.push(`consumer ${stream}/${durable}`);
    actual = info.config;
  }
  await applyDiff(
    `consumer ${stream}/${durable}`,
    wanted,
    actual,
    IMMUTABLE_CONSUMER_FIELDS,
    report,
    log,
    (c) => jsm.consumers.update(stream, durable, c),
  );
}

async function applyDiff(
  what: string,
  wanted: object,
  actual: object,
  immutable: ReadonlySet<string>,
  report: TopologyReport,
  log: BusLog,
  update: (changes: Record<string, unknown>) => Promise<unknown>,
): Promise<void> {
  const { changes, fixed } = diffConfig(
    wanted as Record<string, unknown>,
    actual as Record<string, unknown>,
    immutable,
  );
  for (const f of fixed) {
    const msg = `${what}: ${f}; cannot be changed in place (recreate it to apply)`;
    report.warnings.push(msg);
    log.warn({ object: what }, msg);
  }
  if (Object.keys(changes).length === 0) return;
  try {
    await update(changes);
    report.updated.push(what);
    log.info({ object: what, changes }, 'JetStream configuration updated');
  } catch (err) {
    const msg = `${what}: could not apply ${JSON.stringify(changes)}: ${(err as Error).message}`;
    report.warnings.push(msg);
    log.warn({ object: what, err }, msg);
  }
}

/**
 * JetStream answers that mean "not yet" while a cluster forms (meta leader
 * election, peers still joining) — as when NATS pods and Sluice pods start
 * together. Anything else (a conflicting config, no JetStream at all) is final.
 */
const NOT_READY_YET =
  /no suitable peers for placement|jetstream system temporarily unavailable|timeout|no responders/i;

/**
 * Declare every stream, consumer, bucket and object store. Idempotent, so a
 * cluster that is still forming is simply asked again, until `retryForMs`.
 */
export async function ensureTopology(
  nc: NatsConnection,
  cfg: BusConfig,
  log: BusLog,
  opts: { retryForMs?: number } = {},
): Promise<TopologyReport> {
  const until = Date.now() + (opts.retryForMs ?? 60_000);
  for (let attempt = 1; ; attempt++) {
    try {
      return await declareTopology(nc, cfg, log);
    } catch (err) {
      if (!NOT_READY_YET.test((err as Error).message ?? '') || Date.now() > until) throw err;
      log.warn(
        { err, attempt },
        'JetStream is not ready for the topology yet (cluster forming?): asking again',
      );
      await new Promise((r) => setTimeout(r, Math.min(250 * attempt, 2000)));
    }
  }
}

async function declareTopology(nc: NatsConnection, cfg: BusConfig, log: BusLog): Promise<TopologyReport> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const version = nc.info?.version;
  const bytesLimitSafe = versionAtLeast(version, SAFE_DISCARD_NEW_BYTES_VERSION);
  if (!bytesLimitSafe) {
    log.warn(
      { version },
      `nats-server before ${SAFE_DISCARD_NEW_BYTES_VERSION} can delete the oldest messages of a discard-new stream at max_bytes (nats-server#4771): work streams, dead letters, ledger and bodies are capped by message count only; the free-space guard keeps the reserve`,
    );
  }
  let limits: StoreLimits;
  if (cfg.storeBudgetBytes > 0) {
    limits = divideStoreBudget(cfg.storeBudgetBytes, cfg.maxBytesPerStream, bytesLimitSafe);
  } else {
    const budget = await remoteStoreBudget(jsm);
    limits = divideStoreBudget(budget.bytes, cfg.maxBytesPerStream, bytesLimitSafe);
    log.info({ budgetBytes: budget.bytes, source: budget.source }, 'JetStream store budget');
  }
  const bytesOf = (o: { maxBytes: number }) => (bytesLimitSafe ? o.maxBytes : -1);
  const report: TopologyReport = { created: [], updated: [], warnings: [], limits };

  for (const spec of Object.values(streams)) {
    await ensureStream(jsm, wantedStream(spec, cfg, limits), report, log);
  }
  for (const spec of Object.values(consumers)) {
    await ensureConsumer(jsm, spec.stream, wantedConsumer(spec, cfg), report, log);
  }

  // Delivery ledger: one value per (part, recipient); kept as long as a message can live.
  await ensureKvBucket(
    { jsm, js, report, log },
    buckets.deliveryLedger,
    {
      history: 1,
      ttl: cfg.workMaxAgeMs,
      replicas: cfg.replicas,
      storage: 'file',
    },
    {
      max_age: nanos(cfg.workMaxAgeMs),
      num_replicas: cfg.replicas,
      max_msgs_per_subject: 1,
      // A full ledger must never stop delivery: it drops its oldest entries (outcomes of mail
      // delivered long ago) instead of refusing new ones; discard old is safe on every version.
      discard: 'old',
      max_bytes: limits.ledger.maxBytes,
      max_msgs: limits.ledger.maxMsgs,
    },
  );

  // Greylist triplets (filter): an entry lives greylistTtlMs after its last write (auto-allow
  // window). Its share of the store budget; when full it forgets its oldest triplets (discard
  // old), which only means greylisting those senders again.
  await ensureKvBucket(
    { jsm, js, report, log },
    buckets.greylist,
    {
      history: 1,
      ttl: cfg.greylistTtlMs,
      replicas: cfg.replicas,
      storage: 'file',
    },
    {
      max_age: nanos(cfg.greylistTtlMs),
      num_replicas: cfg.replicas,
      max_msgs_per_subject: 1,
      discard: 'old',
      max_bytes: limits.greylist.maxBytes,
      max_msgs: limits.greylist.maxMsgs,
    },
  );

  // MX session counters (ingress): one key per (client, minute), gone after two minutes (the
  // current and the last window); when full, the oldest go first (discard old), which only
  // forgets old counts.
  await ensureKvBucket(
    { jsm, js, report, log },
    buckets.ingressSessionRate,
    { history: 1, ttl: SESSION_RATE_KEY_TTL_MS, replicas: cfg.replicas, storage: 'file' },
    {
      max_age: nanos(SESSION_RATE_KEY_TTL_MS),
      num_replicas: cfg.replicas,
      max_msgs_per_subject: 1,
      discard: 'old',
      max_bytes: limits.sessionRate.maxBytes,
      max_msgs: limits.sessionRate.maxMsgs,
    },
  );

  // LDAP snapshot (resolver): a few versions kept for an operator to compare; no age limit,
  // since the snapshot is what keeps mail flowing while LDAP is down.
  await ensureKvBucket(
    { jsm, js, report, log },
    buckets.ldapSnapshot,
    { history: 5, replicas: cfg.replicas, storage: 'file' },
    {
      num_replicas: cfg.replicas,
      max_msgs_per_subject: 5,
      // Its share of the store budget; when full, older versions go first (safe on every version).
      discard: 'old',
      max_bytes: limits.ldapSnapshot.maxBytes,
      max_msgs: limits.ldapSnapshot.maxMsgs,
    },
  );

  // MTA-STS policy cache (egress): the last policy per domain; when full, the oldest go
  // first (a dropped policy is fetched again: RFC 8461 §5.1 allows refetching at any time).
  await ensureKvBucket(
    { jsm, js, report, log },
    buckets.mtaStsPolicies,
    { history: 1, replicas: cfg.replicas, storage: 'file' },
    {
      num_replicas: cfg.replicas,
      max_msgs_per_subject: 1,
      discard: 'old',
      max_bytes: limits.mtaStsPolicies.maxBytes,
      max_msgs: limits.mtaStsPolicies.maxMsgs,
    },
  );

  // Submission rate counters: forgotten a day after their window; when full the oldest go
  // first (an old window's count is no longer consulted).
  await ensureKvBucket(
    { jsm, js, report, log },
    buckets.submissionRates,
    { history: 1, ttl: submissionRateTtlMs, replicas: cfg.replicas, storage: 'file' },
    {
      max_age: nanos(submissionRateTtlMs),
      num_replicas: cfg.replicas,
      max_msgs_per_subject: 1,
      discard: 'old',
      max_bytes: limits.submissionRates.maxBytes,
      max_msgs: limits.submissionRates.maxMsgs,
    },
  );

  // Credential snapshot (submission, libs/credentials): one key per user, the last value only,
  // no age limit (it is what authenticates while LDAP is down). Discard new: a full bucket
  // refuses the refresh (logged) rather than silently dropping some user's hash.
  await ensureKvBucket(
    { jsm, js, report, log },
    buckets.credentials,
    { history: 1, replicas: cfg.replicas, storage: 'file' },
    {
      num_replicas: cfg.replicas,
      max_msgs_per_subject: 1,
      discard: 'new',
      max_bytes: bytesOf(limits.credentials),
      max_msgs: limits.credentials.maxMsgs,
    },
  );

  // Brute-force counters and bans (submission): forgotten a day after their last write; when
  // full the oldest go first (an old counter lost only gives an attacker a few more tries).
  await ensureKvBucket(
    { jsm, js, report, log },
    buckets.authThrottle,
    {
      history: 1,
      ttl: authThrottleTtlMs,
      replicas: cfg.replicas,
      storage: 'file',
    },
    {
      max_age: nanos(authThrottleTtlMs),
      num_replicas: cfg.replicas,
      max_msgs_per_subject: 1,
      discard: 'old',
      max_bytes: limits.authThrottle.maxBytes,
      max_msgs: limits.authThrottle.maxMsgs,
    },
  );

  // TLS-RPT (egress): a day's results per policy domain and the send markers; kept 3 days
  // (a report covers yesterday), the oldest first when full (RFC 8460 reports are best effort).
  const rptAge = 3 * 86_400_000;
  await ensureKvBucket(
    { jsm, js, report, log },
    buckets.tlsReports,
    { history: 1, ttl: rptAge, replicas: cfg.replicas, storage: 'file' },
    {
      max_age: nanos(rptAge),
      num_replicas: cfg.replicas,
      max_msgs_per_subject: 1,
      discard: 'old',
      max_bytes: limits.tlsReports.maxBytes,
      max_msgs: limits.tlsReports.maxMsgs,
    },
  );
  // The egress queue index and destination states (services/egress queue-index.ts,
  // destination-states.ts): entries of parts long gone age out with the work streams; when
  // full the oldest go first (the parts themselves stay in the deliver stream and are still
  // delivered: only their listing and any hold on them are lost).
  for (const bucket of ['egressQueue', 'egressDestinations'] as const) {
    await ensureKvBucket(
      { jsm, js, report, log },
      buckets[bucket],
      { history: 1, ttl: cfg.workMaxAgeMs, replicas: cfg.replicas, storage: 'file' },
      {
        max_age: nanos(cfg.workMaxAgeMs),
        num_replicas: cfg.replicas,
        max_msgs_per_subject: 1,
        discard: 'old',
        max_bytes: limits[bucket].maxBytes,
        max_msgs: limits[bucket].maxMsgs,
      },
    );
  }

  // Body store (claim check): bodies live as long as the envelopes that point at them.
  const objStream = `OBJ_${objectStores.bodies}`;
  if (!(await streamExists(jsm, objStream))) {
    const created = await createdUnlessRaced(() =>
      new Objm(js).create(objectStores.bodies, {
        ttl: nanos(cfg.workMaxAgeMs),
        replicas: cfg.replicas,
        storage: 'file',
      }),
    );
    if (created) report.created.push(`object store ${objectStores.bodies}`);
  }
  await reconcileBackingStream(
    jsm,
    objStream,
    {
      max_age: nanos(cfg.workMaxAgeMs),
      num_replicas: cfg.replicas,
      max_bytes: bytesOf(limits.bodies),
      max_msgs: limits.bodies.maxMsgs,
    },
    report,
    log,
  );

  if (report.created.length > 0) log.info({ created: report.created }, 'JetStream topology declared');
  return report;
}

/** Run a creation; false when another process created it first (with its limits already set). */
async function createdUnlessRaced(create: () => Promise<unknown>): Promise<boolean> {
  try {
    await create();
    return true;
  } catch (err) {
    if (isApiError(err, STREAM_NAME_IN_USE) || /already in use/i.test((err as Error).message ?? ''))
      return false;
    throw err;
  }
}

async function streamExists(jsm: JetStreamManager, name: string): Promise<boolean> {
  try {
    await jsm.streams.info(name);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Create a KV bucket unless it exists, then bring its backing stream to the wanted limits. */
async function ensureKvBucket(
  t: { jsm: JetStreamManager; js: JetStreamClient; report: TopologyReport; log: BusLog },
  name: string,
  create: Partial<KvOptions>,
  backing: Partial<StreamConfig>,
): Promise<void> {
  const stream = kvNames.stream(name);
  if (!(await streamExists(t.jsm, stream))) {
    const created = await createdUnlessRaced(() => new Kvm(t.js).create(name, create));
    if (created) t.report.created.push(`kv ${name}`);
  }
  await reconcileBackingStream(t.jsm, stream, backing, t.report, t.log);
}

/** Bring a KV / object store's backing stream to the wanted age and replicas. */
async function reconcileBackingStream(
  jsm: JetStreamManager,
  name: string,
  wanted: Partial<StreamConfig>,
  report: TopologyReport,
  log: BusLog,
): Promise<void> {
  const actual = (await jsm.streams.info(name)).config;
  await applyDiff(`stream ${name}`, wanted, actual, IMMUTABLE_STREAM_FIELDS, report, log, (changes) =>
    jsm.streams.update(name, changes),
  );
}
