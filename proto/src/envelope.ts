/**
 * The envelope: the one message type that travels between Sluice stages.
 *
 * Version 1 of the contract. An envelope carries everything a stage needs to
 * act on a message — who sent it (client, MAIL FROM and its RFC 3461/6531
 * parameters), to whom (each recipient with its own status), where the body
 * is (inline in the same NATS message, or in the object store: a claim check),
 * which headers stages want prepended (Received, Authentication-Results, later
 * ARC-* and DKIM-Signature), and the before-queue verdict. Stages add to an
 * envelope; none of them rewrites the stored body. Every stage validates what
 * it consumes with `envelopeSchema` and dead-letters what does not parse.
 *
 * Compatibility: fields may be added as optional in v1; removing or changing
 * the meaning of a field needs `v: 2` and a reader for both. Readers keep
 * unknown fields, writers spread: every object here is a zod looseObject, so
 * a field a newer replica added survives parsing by an older one at every
 * nesting level, and every stage builds its output by spreading its input
 * (`{ ...env, ... }`), never by listing the fields it knows — otherwise an
 * old replica in a rolling upgrade would erase what a new one wrote
 * (decisions/0004).
 */
import { z } from 'zod';
import { LEGACY_PART_SUFFIX_PATTERN, PART_SUFFIX_PATTERN } from './part-id.ts';

export const ENVELOPE_VERSION = 1 as const;

/** Queue ids are used as NATS subject tokens and KV keys: base32, no dots. */
export const queueIdSchema = z
  .string()
  .regex(/^[0-9A-Z]{10,40}$/, 'queue id must be 10-40 characters of [0-9A-Z]');

/**
 * A part id is the queue id plus a content suffix added by the resolver
 * (part-id.ts: a digest of the route key and the sorted recipients). The
 * positional suffix of the first releases ("-1", "-2") is still read.
 */
export const PART_ID_PATTERN = `^[0-9A-Z]{10,40}(-(${PART_SUFFIX_PATTERN}|${LEGACY_PART_SUFFIX_PATTERN}))?$`;
export const partIdSchema = z
  .string()
  .regex(new RegExp(PART_ID_PATTERN), 'part id must be a queue id, "-" and a content suffix of [0-9A-Z]');

const noLineBreaks = (s: string) => !/[\r\n\0]/.test(s);

/**
 * An envelope address (RFC 5321 §4.1.2 Path without the angle brackets). The
 * empty string is the null reverse-path and is valid only as MAIL FROM. CR, LF
 * and NUL are refused everywhere: nothing we generate may carry them into a
 * command or header (SMTP smuggling, header injection).
 */
export const mailboxSchema = z
  .string()
  .max(512)
  .refine(noLineBreaks, 'address must not contain CR, LF or NUL');

/** A verified TLS client certificate (mTLS), as the relay door identifies a client by it. */
export const peerCertificateSchema = z.looseObject({
  /** Subject distinguished name, as OpenSSL prints it ("CN=relay1.example.org,O=Example"). */
  subject: z.string().max(1024),
  /** SHA-256 of the DER certificate, lower-case hex: what an allow-list pins. */
  fingerprintSha256: z.string().regex(/^[0-9a-f]{64}$/, 'fingerprint must be 64 lowercase hex digits'),
  /** Issuer distinguished name. */
  issuer: z.string().max(1024).optional(),
});
export type PeerCertificate = z.infer<typeof peerCertificateSchema>;

export const clientSchema = z.looseObject({
  /** The client IP as we trust it (after PROXY protocol from a trusted source). */
  ip: z.string().min(1),
  port: z.number().int().min(0).max(65535).optional(),
  /** The EHLO/HELO argument as given. */
  helo: z.string().max(512).refine(noLineBreaks),
  /** Reverse DNS name of the client, when looked up. */
  reverseName: z.string().optional(),
  /** TLS of the inbound session (RFC 3207), absent for cleartext. */
  tls: z
    .looseObject({
      protocol: z.string(),
      cipher: z.string(),
      /**
       * The client certificate of a mutual-TLS session (the relay door: a
       * trusted host identified by its certificate rather than a password).
       * Absent when the client presented none or it was not verified.
       */
      clientCertificate: peerCertificateSchema.optional(),
    })
    .optional(),
  /**
   * The submission identity: the user authenticated with SMTP AUTH
   * (RFC 4954) and the mechanism; absent for unauthenticated MX traffic.
   */
  auth: z.looseObject({ user: z.string(), method: z.string() }).optional(),
});
export type Client = z.infer<typeof clientSchema>;

export const mailFromSchema = z.looseObject({
  /** '' is the null reverse-path (bounces, RFC 5321 §4.5.5). */
  address: mailboxSchema,
  /** Declared SIZE (RFC 1870). */
  size: z.number().int().nonnegative().optional(),
  /** BODY= (RFC 6152). */
  body: z.enum(['7BIT', '8BITMIME', 'BINARYMIME']).optional(),
  /** SMTPUTF8 (RFC 6531). */
  smtputf8: z.boolean().optional(),
  /** RET= and ENVID= (RFC 3461 §4.3, §4.4), kept for the egress' DSNs. */
  ret: z.enum(['FULL', 'HDRS']).optional(),
  envid: z.string().max(100).optional(),
  /**
   * REQUIRETLS (RFC 8689 §2, §4.1): the sender asked that every hop use TLS
   * with an authenticated server and REQUIRETLS; set by the ingress when MAIL
   * FROM carried it (only accepted under TLS), honoured by the egress.
   */
  requireTls: z.boolean().optional(),
  /**
   * The envelope sender before SRS rewrote `address` for a forward (set by
   * the rewriter with SRS): DSNs, logs and the timeline name the real sender,
   * and a bounce to the SRS address is routed back to it.
   */
  original: mailboxSchema.optional(),
});
export type MailFrom = z.infer<typeof mailFromSchema>;

/** Where a recipient is delivered. Set by the resolver; read by the egress. */
export const routeSchema = z.discriminatedUnion('kind', [
  /** Look up the MX of `domain` (RFC 5321 §5.1) and deliver there. */
  z.looseObject({ kind: z.literal('mx'), domain: z.string().min(1) }),
  /** A configured transport (internal host, smarthost): fixed host and port. */
  z.looseObject({
    kind: z.literal('smtp'),
    name: z.string().min(1),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    lmtp: z.boolean().default(false),
  }),
]);
export type Route = z.infer<typeof routeSchema>;

export const recipientStatusSchema = z.enum(['pending', 'delivered', 'deferred', 'failed']);
export type RecipientStatus = z.infer<typeof recipientStatusSchema>;

/**
 * The TLS outcome of a delivery to the next hop: none (cleartext), tls
 * (opportunistic STARTTLS, certificate not verified, RFC 3207), mta-sts (TLS
 * required and the certificate verified by an MTA-STS policy, RFC 8461),
 * dane (TLS required and the certificate matched by TLSA records, RFC 7672).
 */
export const tlsOutcomeSchema = z.enum(['none', 'tls', 'mta-sts', 'dane']);
export type TlsOutcome = z.infer<typeof tlsOutcomeSchema>;

/** The Action of a per-recipient DSN field (RFC 3464 §2.3.3). */
export const dsnActionSchema = z.enum(['failed', 'delayed', 'delivered', 'relayed', 'expanded']);
export type DsnAction = z.infer<typeof dsnActionSchema>;

/**
 * Per-recipient delivery state, what a DSN (RFC 3464) reports for the
 * recipient and what decides whether one is still owed. Written by the egress.
 */
export const recipientDeliverySchema = z.looseObject({
  /** RFC 3464 §2.3.3 Action: what happened to the recipient so far. */
  action: dsnActionSchema.optional(),
  /** RFC 3464 §2.3.5 Remote-MTA: the host that gave the last reply ("mx1.example.net:25"). */
  remoteMta: z.string().max(512).optional(),
  /** Delivery attempts made for the recipient (for DELAY DSNs and the retry schedule). */
  attempts: z.number().int().nonnegative().optional(),
  /** A DSN for the current action was sent (so a redelivery does not send a second). */
  dsnSent: z.boolean().optional(),
  /** How the last delivery attempt was protected. */
  tls: tlsOutcomeSchema.optional(),
});
export type RecipientDelivery = z.infer<typeof recipientDeliverySchema>;

export const recipientSchema = z.looseObject({
  /** The address to deliver to (after resolution). */
  address: mailboxSchema.refine((s) => s.length > 0, 'recipient address must not be empty'),
  /** The address as given in RCPT TO, before any resolution. */
  original: mailboxSchema,
  /** How the resolver got from `original` to `address` (alias chain), for the timeline. */
  via: z.array(z.string()).optional(),
  /** RFC 3461 §4.1, §4.2 parameters. */
  notify: z.array(z.enum(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'])).optional(),
  orcpt: z.string().max(500).optional(),
  status: recipientStatusSchema.default('pending'),
  /** The last reply from a remote server for this recipient, if any. */
  lastReply: z.string().optional(),
  /**
   * The address whose forward (routing.forwards, a user's own forward)
   * produced this recipient: SRS and ARC are applied on its behalf, and a
   * DSN for a forwarded recipient names it (RFC 3464 §2.3.1 Original-Recipient
   * keeps `orcpt`). Absent when no forward was involved.
   */
  forwardOwner: mailboxSchema.optional(),
  /** Delivery state for DSNs; absent until the egress attempted the recipient. */
  delivery: recipientDeliverySchema.optional(),
});
export type Recipient = z.infer<typeof recipientSchema>;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits');

/**
 * The body reference. `inline`: the bytes follow the envelope in the same NATS
 * message (see codec.ts). `object`: the bytes are in the JetStream object store
 * (claim check), so NATS' max_payload never limits message size.
 */
export const bodyRefSchema = z.discriminatedUnion('kind', [
  z.looseObject({ kind: z.literal('inline'), size: z.number().int().nonnegative(), sha256: sha256Hex }),
  z.looseObject({
    kind: z.literal('object'),
    bucket: z.string().min(1),
    key: z.string().min(1),
    size: z.number().int().nonnegative(),
    sha256: sha256Hex,
    /**
     * Whether any byte has the high bit set (found while the body streamed in),
     * so the egress can declare BODY=8BITMIME (RFC 6152) without reading the
     * body before MAIL FROM. Absent on older envelopes: treated as true.
     */
    eightBit: z.boolean().optional(),
  }),
]);
export type BodyRef = z.infer<typeof bodyRefSchema>;

/** A header a stage wants prepended. `value` excludes the name, colon and final CRLF; may be folded. */
export const headerSchema = z.looseObject({
  name: z.string().regex(/^[!-9;-~]+$/, 'header name must be printable ASCII without colon (RFC 5322 §2.2)'),
  value: z.string().refine((v) => !/\0/.test(v) && !/\r(?!\n)|(?<!\r)\n/.test(v), 'bare CR or LF in header'),
  /** Which stage added it (for the timeline and debugging). */
  addedBy: z.string(),
});
export type PrependHeader = z.infer<typeof headerSchema>;

/**
 * A header field of the stored body that must not leave Sluice: the
 * `index`-th (0-based, counted top down) field named `name`
 * (case-insensitive) in the body's header block. The stored body is never
 * rewritten (DESIGN: stages add, none rewrites), so removal is an instruction
 * the egress' message assembly carries out when it writes the message. Used
 * for Authentication-Results fields that claim our authserv-id (RFC 8601 §5).
 */
export const headerRemovalSchema = z.looseObject({
  name: z.string().regex(/^[!-9;-~]+$/, 'header name must be printable ASCII without colon (RFC 5322 §2.2)'),
  index: z.number().int().nonnegative(),
  /** Why (for the timeline), e.g. "forged authserv-id". */
  reason: z.string().optional(),
});
export type HeaderRemoval = z.infer<typeof headerRemovalSchema>;

export const ruleHitSchema = z.looseObject({
  name: z.string(),
  score: z.number(),
  detail: z.string().optional(),
});
export type RuleHit = z.infer<typeof ruleHitSchema>;

export const verdictSchema = z.looseObject({
  action: z.enum(['accept', 'tag', 'greylist', 'tempfail', 'reject']),
  score: z.number(),
  rules: z.array(ruleHitSchema).default([]),
  /** Short, client-safe reason for a refusal. */
  reason: z.string().optional(),
});
export type Verdict = z.infer<typeof verdictSchema>;

/** A DMARC disposition or published policy (RFC 7489 §6.3 p=, Appendix C disposition). */
export const dmarcPolicySchema = z.enum(['none', 'quarantine', 'reject']);

/**
 * Summary of the authentication results, for routing decisions, ARC sealing
 * (ARC-Authentication-Results, RFC 8617 §4.1.1) and the timeline. The
 * structured fields are optional: the filter fills what it evaluated.
 */
export const authSummarySchema = z.looseObject({
  /** SPF result (RFC 7208 §2.6). */
  spf: z.string(),
  /** One entry per DKIM signature (RFC 6376 §6.1). */
  dkim: z.array(
    z.looseObject({
      /** d= of the signature. */
      domain: z.string(),
      result: z.string(),
      /** s= of the signature. */
      selector: z.string().optional(),
      /** d= aligns with the RFC5322.From domain (RFC 7489 §3.1.1). */
      aligned: z.boolean().optional(),
    }),
  ),
  /** DMARC result (RFC 7489 §11.2): pass, fail, none, temperror, permerror. */
  dmarc: z.string(),
  /** ARC chain validation result (RFC 8617 §4.1.1 cv=): none, pass, fail. */
  arc: z.string(),
  /** The DMARC evaluation in detail. */
  dmarcDetail: z
    .looseObject({
      /** The RFC5322.From domain evaluated. */
      domain: z.string().optional(),
      result: z.string(),
      /** The policy the domain publishes (p=, or sp= for a subdomain). */
      policy: dmarcPolicySchema.optional(),
      /** What we applied (may be softer than the policy, e.g. a trusted ARC chain). */
      disposition: dmarcPolicySchema.optional(),
    })
    .optional(),
  /** The ARC chain in detail (RFC 8617 §5.2). */
  arcChain: z
    .looseObject({
      result: z.enum(['none', 'pass', 'fail']),
      /** Number of ARC sets (i=1..n) on the message; 0 without a chain. */
      instances: z.number().int().nonnegative(),
    })
    .optional(),
});
export type AuthSummary = z.infer<typeof authSummarySchema>;

export const hopSchema = z.looseObject({
  stage: z.string(),
  instance: z.string(),
  at: z.string(),
});

export const envelopeSchema = z.looseObject({
  v: z.literal(ENVELOPE_VERSION),
  /** Queue id, assigned by the ingress; stable for the life of the message. */
  id: queueIdSchema,
  /** Set by the resolver when it splits the envelope per route: `${id}-${n}`. */
  partId: partIdSchema.optional(),
  /** W3C trace context of the message's root span (also carried in NATS headers per hop). */
  trace: z.looseObject({ traceparent: z.string(), tracestate: z.string().optional() }).optional(),
  receivedAt: z.iso.datetime(),
  /** Which door the message came in by. */
  source: z.enum(['mx', 'submission', 'relay', 'dsn']),
  /** Our hostname that accepted it. */
  receivedBy: z.string(),
  client: clientSchema,
  mailFrom: mailFromSchema,
  recipients: z.array(recipientSchema).min(1),
  /** Delivery route of this part (all its recipients share it). Set by the resolver. */
  route: routeSchema.optional(),
  body: bodyRefSchema,
  /** Headers to prepend, in their final order (top first). A stage adding one puts it at the front. */
  prepend: z.array(headerSchema).default([]),
  /** Header fields of the stored body the egress leaves out (optional, v1 addition; headerRemovalSchema). */
  removeHeaders: z.array(headerRemovalSchema).optional(),
  verdict: verdictSchema.optional(),
  auth: authSummarySchema.optional(),
  /** The stages this envelope has passed, in order. */
  hops: z.array(hopSchema).default([]),
  /**
   * Set by the egress queue when it puts a waiting part back in the deliver
   * stream (retry now, release, delete, bounce): the n-th wake. A copy with a
   * lower number than the queue entry's is stale and dropped (optional, v1 addition).
   */
  queueWake: z.number().int().positive().optional(),
});
export type Envelope = z.infer<typeof envelopeSchema>;
export type EnvelopeInput = z.input<typeof envelopeSchema>;

/** Raised when bytes on the bus are not a valid envelope; the bus dead-letters them. */
export class EnvelopeValidationError extends Error {
  override name = 'EnvelopeValidationError';
}

/** Validate an unknown value as an envelope, with a readable one-line reason on failure. */
export function parseEnvelope(value: unknown): Envelope {
  const r = envelopeSchema.safeParse(value);
  if (!r.success) {
    const reason = r.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new EnvelopeValidationError(`invalid envelope: ${reason}`);
  }
  return r.data;
}

/**
 * The cheap check of an envelope about to be published (publish.ts): the
 * shape a stage needs to route it (version, queue id, at least one recipient
 * with an address, a body reference), without the full schema. The full
 * validation (`parseEnvelope`) runs once per hop, where the envelope is
 * decoded (codec.ts): the next stage, and for the ingress' envelope the
 * filter before the 250, refuse what this lets through (decision 0036).
 */
export function checkEnvelopeShape(env: Envelope): void {
  const e = env as Partial<Envelope> | null;
  let problem: string | undefined;
  if (typeof e !== 'object' || e === null) problem = '(root): not an object';
  else if (e.v !== ENVELOPE_VERSION) problem = `v: must be ${ENVELOPE_VERSION}`;
  else if (typeof e.id !== 'string' || e.id.length === 0) problem = 'id: missing';
  else if (!Array.isArray(e.recipients) || e.recipients.length === 0)
    problem = 'recipients: at least one recipient';
  else if (e.recipients.some((r) => typeof r?.address !== 'string' || r.address.length === 0))
    problem = 'recipients: every recipient needs an address';
  else if (typeof e.mailFrom?.address !== 'string') problem = 'mailFrom.address: missing';
  else if (e.body?.kind !== 'inline' && e.body?.kind !== 'object') problem = 'body.kind: inline or object';
  if (problem) throw new EnvelopeValidationError(`invalid envelope: ${problem}`);
}

/** The part id if set, else the queue id: the identity of this envelope on the bus. */
export function envelopeKey(env: Pick<Envelope, 'id' | 'partId'>): string {
  return env.partId ?? env.id;
}
