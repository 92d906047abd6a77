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
 * the meaning of a field needs `v: 2` and a reader for both.
 */
import { z } from 'zod';

export const ENVELOPE_VERSION = 1 as const;

/** Queue ids are used as NATS subject tokens and KV keys: base32, no dots. */
export const queueIdSchema = z
  .string()
  .regex(/^[0-9A-Z]{10,40}$/, 'queue id must be 10-40 characters of [0-9A-Z]');

/** A part id is the queue id plus a split suffix added by the resolver ("-1", "-2", ...). */
export const partIdSchema = z.string().regex(/^[0-9A-Z]{10,40}(-[0-9]{1,4})?$/);

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

export const clientSchema = z.object({
  /** The client IP as we trust it (after PROXY protocol from a trusted source). */
  ip: z.string().min(1),
  port: z.number().int().min(0).max(65535).optional(),
  /** The EHLO/HELO argument as given. */
  helo: z.string().max(512).refine(noLineBreaks),
  /** Reverse DNS name of the client, when looked up. */
  reverseName: z.string().optional(),
  /** TLS of the inbound session (RFC 3207), absent for cleartext. */
  tls: z.object({ protocol: z.string(), cipher: z.string() }).optional(),
  /** Authenticated identity (RFC 4954), absent for unauthenticated MX traffic. */
  auth: z.object({ user: z.string(), method: z.string() }).optional(),
});
export type Client = z.infer<typeof clientSchema>;

export const mailFromSchema = z.object({
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
});
export type MailFrom = z.infer<typeof mailFromSchema>;

/** Where a recipient is delivered. Set by the resolver; read by the egress. */
export const routeSchema = z.discriminatedUnion('kind', [
  /** Look up the MX of `domain` (RFC 5321 §5.1) and deliver there. */
  z.object({ kind: z.literal('mx'), domain: z.string().min(1) }),
  /** A configured transport (internal host, smarthost): fixed host and port. */
  z.object({
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

export const recipientSchema = z.object({
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
});
export type Recipient = z.infer<typeof recipientSchema>;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits');

/**
 * The body reference. `inline`: the bytes follow the envelope in the same NATS
 * message (see codec.ts). `object`: the bytes are in the JetStream object store
 * (claim check), so NATS' max_payload never limits message size.
 */
export const bodyRefSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('inline'), size: z.number().int().nonnegative(), sha256: sha256Hex }),
  z.object({
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
export const headerSchema = z.object({
  name: z.string().regex(/^[!-9;-~]+$/, 'header name must be printable ASCII without colon (RFC 5322 §2.2)'),
  value: z.string().refine((v) => !/\0/.test(v) && !/\r(?!\n)|(?<!\r)\n/.test(v), 'bare CR or LF in header'),
  /** Which stage added it (for the timeline and debugging). */
  addedBy: z.string(),
});
export type PrependHeader = z.infer<typeof headerSchema>;

export const ruleHitSchema = z.object({ name: z.string(), score: z.number(), detail: z.string().optional() });

export const verdictSchema = z.object({
  action: z.enum(['accept', 'tag', 'greylist', 'tempfail', 'reject']),
  score: z.number(),
  rules: z.array(ruleHitSchema).default([]),
  /** Short, client-safe reason for a refusal. */
  reason: z.string().optional(),
});
export type Verdict = z.infer<typeof verdictSchema>;

/** Summary of the authentication results, for routing decisions and the timeline. */
export const authSummarySchema = z.object({
  spf: z.string(),
  dkim: z.array(z.object({ domain: z.string(), result: z.string(), selector: z.string().optional() })),
  dmarc: z.string(),
  arc: z.string(),
});
export type AuthSummary = z.infer<typeof authSummarySchema>;

export const hopSchema = z.object({
  stage: z.string(),
  instance: z.string(),
  at: z.string(),
});

export const envelopeSchema = z.object({
  v: z.literal(ENVELOPE_VERSION),
  /** Queue id, assigned by the ingress; stable for the life of the message. */
  id: queueIdSchema,
  /** Set by the resolver when it splits the envelope per route: `${id}-${n}`. */
  partId: partIdSchema.optional(),
  /** W3C trace context of the message's root span (also carried in NATS headers per hop). */
  trace: z.object({ traceparent: z.string(), tracestate: z.string().optional() }).optional(),
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
  verdict: verdictSchema.optional(),
  auth: authSummarySchema.optional(),
  /** The stages this envelope has passed, in order. */
  hops: z.array(hopSchema).default([]),
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

/** The part id if set, else the queue id: the identity of this envelope on the bus. */
export function envelopeKey(env: Pick<Envelope, 'id' | 'partId'>): string {
  return env.partId ?? env.id;
}
