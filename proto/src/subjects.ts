/**
 * The one place that names NATS subjects, JetStream streams, consumers, KV
 * buckets, object stores and queue groups (Postfix's mail_proto.h for Sluice).
 * Services import these names; none writes a subject string of its own.
 * Names already stored in a running cluster are costly to change: add, do not
 * rename. Everything is versioned under `sluice.v1`.
 */

export const SUBJECT_ROOT = 'sluice.v1';

/** Work-queue subjects: each carries envelopes to one stage. */
export const subjects = {
  /** ingress/submission -> resolver */
  resolve: `${SUBJECT_ROOT}.mail.resolve`,
  /** resolver -> rewriter */
  rewrite: `${SUBJECT_ROOT}.mail.rewrite`,
  /** rewriter -> egress */
  deliver: `${SUBJECT_ROOT}.mail.deliver`,
  /** Before-queue verdict: ingress asks, filter answers (request/reply, queue group). */
  filterVerdict: `${SUBJECT_ROOT}.rpc.filter.verdict`,
  /** RCPT-time lookup: ingress and `sluice lookup` ask, resolver answers. */
  resolverLookup: `${SUBJECT_ROOT}.rpc.resolver.lookup`,
  /**
   * `sluice queue ...` asks one egress replica to list or act on the delivery queue
   * (services/egress/src/queue-control.ts); it answers a QueueControlReply.
   */
  egressQueueControl: `${SUBJECT_ROOT}.rpc.egress.queue`,
  /** `sluice ldap refresh` asks one resolver to re-read LDAP now; it answers a LdapRefreshReply. */
  resolverLdapRefresh: `${SUBJECT_ROOT}.rpc.resolver.ldap-refresh`,
  /** Per-message timeline event: one subject per queue id so one message reads back cheaply. */
  event: (queueId: string) => `${SUBJECT_ROOT}.events.${queueId}`,
  eventsAll: `${SUBJECT_ROOT}.events.>`,
  /**
   * Which queue ids carried one ingress dedup id (Nats-Msg-Id), so a resend the
   * resolve stream drops names its first copy. Two tokens after `events`, so it
   * never matches a queue id's timeline subject; kept by SLUICE_EVENTS.
   */
  dedupIndex: (dedupKey: string) => `${SUBJECT_ROOT}.events.dedup.${dedupKey}`,
  /** Dead letters, by the stage that gave up. */
  dead: (stage: StageName) => `${SUBJECT_ROOT}.dead.${stage}`,
  deadAll: `${SUBJECT_ROOT}.dead.>`,
} as const;

export type StageName = 'ingress' | 'filter' | 'resolver' | 'rewriter' | 'egress' | 'submission';

export type StreamRole = 'work' | 'log';

export interface StreamSpec {
  name: string;
  subjects: string[];
  /** work: work-queue retention, one consumer, message removed on ack. log: limits retention (age). */
  role: StreamRole;
}

export const streams = {
  resolve: { name: 'SLUICE_RESOLVE', subjects: [subjects.resolve], role: 'work' },
  rewrite: { name: 'SLUICE_REWRITE', subjects: [subjects.rewrite], role: 'work' },
  deliver: { name: 'SLUICE_DELIVER', subjects: [subjects.deliver], role: 'work' },
  events: { name: 'SLUICE_EVENTS', subjects: [subjects.eventsAll], role: 'log' },
  dead: { name: 'SLUICE_DEAD', subjects: [subjects.deadAll], role: 'log' },
} as const satisfies Record<string, StreamSpec>;

export interface ConsumerSpec {
  stream: string;
  durable: string;
  filterSubject: string;
  stage: StageName;
}

/** Durable pull consumers; every replica of a stage pulls from the same one. */
export const consumers = {
  resolver: {
    stream: streams.resolve.name,
    durable: 'resolver',
    filterSubject: subjects.resolve,
    stage: 'resolver',
  },
  rewriter: {
    stream: streams.rewrite.name,
    durable: 'rewriter',
    filterSubject: subjects.rewrite,
    stage: 'rewriter',
  },
  egress: {
    stream: streams.deliver.name,
    durable: 'egress',
    filterSubject: subjects.deliver,
    stage: 'egress',
  },
} as const satisfies Record<string, ConsumerSpec>;

export const queueGroups = {
  filter: 'sluice-filter',
  egress: 'sluice-egress',
  resolver: 'sluice-resolver',
} as const;

export const buckets = {
  /** Egress ledger: one key per (queue id, final recipient) delivered or failed for good. */
  deliveryLedger: 'sluice_delivery_ledger',
  /** Filter greylisting: one key per (client network, sender, recipient) triplet, shared by all replicas. */
  greylist: 'sluice_greylist',
  /**
   * What the resolver last read from LDAP: one key (ldapSnapshotKey), a versioned,
   * gzip'd JSON snapshot every resolver replica serves from while LDAP is down.
   */
  ldapSnapshot: 'sluice_ldap_snapshot',
  /**
   * The egress' MTA-STS policy cache (RFC 8461 §5): one key per policy domain,
   * the policy with its id and expiry (max_age), shared by every replica.
   */
  mtaStsPolicies: 'sluice_mta_sts_policies',
  /**
   * The MX's sessions per client IP per minute (ingress.limits.sessionsPerMinute): one counter
   * key per (client, minute), shared by every ingress replica; keys live two minutes.
   */
  ingressSessionRate: 'sluice_ingress_session_rate',
  /**
   * The submission service's sending-rate counters: one key per (rate class,
   * user or relay client, window, window number), compare-and-set, shared by
   * every replica; gone submissionRateTtlMs after the last write.
   */
  submissionRates: 'sluice_submission_rates',
  /**
   * The egress' TLS-RPT data (RFC 8460): `results.<day>.<policy domain>`, the
   * day's session counts per policy merged by every replica, and
   * `sent.<day>.<policy domain>`, the marker that one replica sends that report.
   */
  tlsReports: 'sluice_tls_reports',
  /**
   * The submission service's credential snapshot (libs/credentials): one key per
   * directory user holding its login names and password HASH only (never a
   * password), plus credentialsMetaKey; every replica authenticates from it
   * while LDAP is down.
   */
  credentials: 'sluice_credentials',
  /**
   * Brute-force counters and bans of the submission service (libs/credentials):
   * one key per client IP (IPv6: per /64) and per user, compare-and-set, TTL'd.
   */
  authThrottle: 'sluice_auth_throttle',
  /**
   * The egress delivery queue (services/egress/src/queue-index.ts): one key per
   * deferred or held part (its part id), with its destination, next attempt,
   * attempts, last reply and any operator command; shared by every replica.
   */
  egressQueue: 'sluice_egress_queue',
  /**
   * Destination states (services/egress/src/destination-states.ts): one key per
   * destination that failed recently (421, no connection), with the time until
   * which every replica holds its mail back.
   */
  egressDestinations: 'sluice_egress_destinations',
} as const;

/** How long a rate counter of buckets.submissionRates lives (ms): the longest window (a day) and a margin. */
export const submissionRateTtlMs = 25 * 3600 * 1000;

/** The key of buckets.credentials saying when and from what the snapshot was last refreshed. */
export const credentialsMetaKey = 'meta';

/** How long a brute-force counter or ban record of buckets.authThrottle lives after its last write (ms). */
export const authThrottleTtlMs = 86_400_000;

/** The one key of buckets.ldapSnapshot. */
export const ldapSnapshotKey = 'current';

/**
 * What JetStream names behind a KV bucket (the KV convention every NATS client
 * follows, kept here with the bucket names): the stream holding it, the subject
 * of one key, and the API subject reading a stream's last message on a subject
 * (answered by the stream leader; libs/bus kv-over-inbox.ts).
 */
export const kvNames = {
  stream: (bucket: string) => `KV_${bucket}`,
  subject: (bucket: string, key: string) => `$KV.${bucket}.${key}`,
  messageGet: (stream: string) => `$JS.API.STREAM.MSG.GET.${stream}`,
} as const;

export const objectStores = {
  /** Bodies above the inline threshold (claim check). */
  bodies: 'sluice_bodies',
} as const;

/** NATS header names Sluice sets. */
export const headerNames = {
  msgId: 'Nats-Msg-Id',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  deadReason: 'Sluice-Dead-Reason',
  deadStage: 'Sluice-Dead-Stage',
  contentType: 'Sluice-Content',
  /** On an RPC request: the requester's deadline, epoch milliseconds; the server stops working after it. */
  deadline: 'Sluice-Deadline',
  /** On an RPC reply (empty body): "1" when every handler slot and the wait queue were full; ask again. */
  busy: 'Sluice-Busy',
  /** JetStream: store the message only if the subject's last one has this sequence (0: none). */
  expectedLastSubjectSequence: 'Nats-Expected-Last-Subject-Sequence',
  /** KV: DEL or PURGE on a delete/purge marker (absent on a value). */
  kvOperation: 'KV-Operation',
} as const;
