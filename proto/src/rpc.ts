/**
 * Request/reply contracts between services (NATS core request on a queue
 * group, so replicas share the load). Requests carry W3C trace headers.
 *
 * - filter verdict: the ingress sends the encoded envelope (codec.ts) with the
 *   body inline or as an object reference; the filter answers FilterReply.
 * - resolver lookup: the ingress asks at RCPT time whether an address is ours
 *   and deliverable; answers LookupReply. Also used by `sluice lookup`.
 */
import { z } from 'zod';
import { authSummarySchema, headerRemovalSchema, headerSchema, verdictSchema } from './envelope.ts';

export const filterReplySchema = z.object({
  v: z.literal(1),
  verdict: verdictSchema,
  auth: authSummarySchema.optional(),
  /** Headers to put at the top of the message (e.g. Authentication-Results), top first. */
  prepend: z.array(headerSchema).default([]),
  /** Header fields of the body to leave out on the way out (forged Authentication-Results); copied to the envelope. */
  removeHeaders: z.array(headerRemovalSchema).optional(),
});
export type FilterReply = z.infer<typeof filterReplySchema>;

export const lookupRequestSchema = z.object({
  v: z.literal(1),
  address: z.string().max(512),
  /**
   * The transaction's MAIL FROM ('' for the null sender), when the lookup is
   * made for a RCPT: an SRS address accepts only bounces. Absent for
   * `sluice lookup` (the reversal is shown).
   */
  mailFrom: z.string().max(512).optional(),
  /**
   * `sluice lookup --live`: also ask the LDAP directory now about this one
   * address (the answer still comes from the snapshot in use; the directory's
   * current entry is added to the trail for comparison). Never set at RCPT.
   */
  live: z.boolean().optional(),
});
export type LookupRequest = z.infer<typeof lookupRequestSchema>;

export const lookupReplySchema = z.object({
  v: z.literal(1),
  /**
   * ok: ours and deliverable; unknown: ours but no such address (550 5.1.1);
   * foreign: not one of our domains (relay refused); tempfail: cannot tell now (451 4.3.0).
   */
  result: z.enum(['ok', 'unknown', 'foreign', 'tempfail']),
  /** Final targets after expansion, for `sluice lookup`. */
  targets: z.array(z.string()).default([]),
  /**
   * With result ok: every address the expansion passed through or ended at (the
   * address itself, each alias on the way, the final targets), lower-case. The
   * submission's sender rule: a user may send as the addresses that reach them.
   */
  reaches: z.array(z.string()).optional(),
  /** Human-readable explanation of each step (which rule, which source). */
  trail: z.array(z.string()).default([]),
  reason: z.string().optional(),
  /**
   * A reject entry (routing.reject) matched: the text to give the client with the 550.
   * Only with result unknown.
   */
  rejectText: z.string().optional(),
  /**
   * Which sources decided, each once: "config routing.aliases", "ldap", ...; for LDAP
   * the snapshot version and its age in seconds at the time of the answer.
   */
  decidedBy: z
    .array(
      z.object({
        source: z.string(),
        snapshotVersion: z.number().int().optional(),
        snapshotAgeSeconds: z.number().optional(),
      }),
    )
    .optional(),
});
export type LookupReply = z.infer<typeof lookupReplySchema>;

/** A small typed error reply, for requests that could not be served at all. */
export const rpcErrorSchema = z.object({ v: z.literal(1), error: z.string() });

/** `sluice ldap refresh [--force]`: re-read LDAP now. */
export const ldapRefreshRequestSchema = z.object({ v: z.literal(1), force: z.boolean().default(false) });
export type LdapRefreshRequest = z.infer<typeof ldapRefreshRequestSchema>;

export const ldapRefreshReplySchema = z.object({
  v: z.literal(1),
  /** applied: a new snapshot was stored; unchanged: LDAP had the same entries; held: too many deletions, not applied; failed: LDAP could not be read. */
  outcome: z.enum(['applied', 'unchanged', 'held', 'failed', 'disabled']),
  snapshotVersion: z.number().int().optional(),
  entries: z.number().int().optional(),
  /** Entries whose forward values were refused (pipe, file, CR/LF, self-loop). */
  refused: z.array(z.object({ uid: z.string(), value: z.string(), reason: z.string() })).default([]),
  message: z.string(),
});
export type LdapRefreshReply = z.infer<typeof ldapRefreshReplySchema>;

/**
 * `sluice queue ...`: list the egress delivery queue, or act on one part or on
 * every part of one destination (services/egress/src/queue-control.ts).
 *   retry: try now, skipping the wait (a held part is not released by it);
 *   hold: no attempts until released; release: try now and again as scheduled;
 *   delete: drop the remaining recipients without a DSN (recorded as failed in the ledger);
 *   bounce: fail the remaining recipients now with a DSN to the sender.
 */
export const queueActions = ['retry', 'hold', 'release', 'delete', 'bounce'] as const;
export type QueueAction = (typeof queueActions)[number];

export const queueControlRequestSchema = z.union([
  z.object({ v: z.literal(1), op: z.literal('list'), destination: z.string().optional() }),
  z
    .object({
      v: z.literal(1),
      op: z.enum(queueActions),
      /** A part id, or a queue id (every part of that message). */
      id: z.string().min(1).optional(),
      destination: z.string().min(1).optional(),
    })
    .refine((r) => (r.id === undefined) !== (r.destination === undefined), {
      message: 'give exactly one of id and destination',
    }),
]);
export type QueueControlRequest = z.infer<typeof queueControlRequestSchema>;

/** The most parts one `sluice queue list` answer carries (a NATS message has a size limit). */
export const QUEUE_LIST_MAX_PARTS = 1000;

export const queuedPartSchema = z.object({
  partId: z.string(),
  queueId: z.string(),
  destination: z.string(),
  state: z.enum(['deferred', 'held', 'waking']),
  /** When the next attempt is due (ISO 8601); absent while held. */
  nextAttemptAt: z.string().optional(),
  attempts: z.number().int(),
  lastReply: z.string().optional(),
  recipients: z.number().int(),
  receivedAt: z.string(),
});
export type QueuedPart = z.infer<typeof queuedPartSchema>;

export const queueControlReplySchema = z.object({
  v: z.literal(1),
  /** list: every destination with its counts, and (filtered by destination when asked) the parts. */
  destinations: z
    .array(
      z.object({
        destination: z.string(),
        deferred: z.number().int(),
        held: z.number().int(),
        /**
         * Parts postponed for a busy or paced destination (no attempt yet, not in the index):
         * counted by every replica in memory, summed from their snapshots (a few seconds old).
         */
        postponed: z.number().int().optional(),
        /** The latest time one of them comes back. */
        postponedUntil: z.string().optional(),
        /** The destination is backed off by every replica until this time (421, no connection). */
        backoffUntil: z.string().optional(),
        backoffReason: z.string().optional(),
      }),
    )
    .optional(),
  /** The waiting parts, soonest next attempt first, at most QUEUE_LIST_MAX_PARTS of them. */
  parts: z.array(queuedPartSchema).optional(),
  /** How many parts matched (more than `parts` holds when the list was cut). */
  partsTotal: z.number().int().optional(),
  /** Actions: the part ids acted on, and those that could not be (with why). */
  done: z.array(z.string()).optional(),
  failed: z.array(z.object({ partId: z.string(), reason: z.string() })).optional(),
  error: z.string().optional(),
});
export type QueueControlReply = z.infer<typeof queueControlReplySchema>;
