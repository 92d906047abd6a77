/**
 * From an SMTP transaction to the envelope (proto envelope.ts v1) that
 * travels the pipeline: who connected (IP, HELO, TLS), MAIL FROM with its
 * RFC 1870 / 6152 / 6531 / 3461 parameters, each recipient with its RFC 3461
 * NOTIFY and ORCPT, where the body is, and the trace it belongs to.
 *
 * The publish dedup key of an accepted message is proto's dedupIds.accepted
 * (a client that lost our 250 and resends is queued once).
 */
import type { BodyRef, Envelope, MailFrom, PeerCertificate, Recipient } from '@sluice/proto';

export interface TransactionFacts {
  queueId: string;
  receivedAt: Date;
  /** Our host name. */
  receivedBy: string;
  instance: string;
  client: {
    ip: string;
    port?: number;
    helo: string;
    tls?: { protocol: string; cipher: string; clientCertificate?: PeerCertificate };
  };
  /** '' for the null reverse-path; otherwise the canonical mailbox. */
  mailFrom: string;
  /** MAIL FROM parameters as smtp-server parsed them (upper-case keys, xtext decoded). */
  mailParams: Record<string, string | true>;
  recipients: Array<{ address: string; original: string; notify?: string[]; orcpt?: string }>;
  body: BodyRef;
  traceparent?: string;
  /** Which door the message came in by (default mx). */
  source?: Envelope['source'];
  /** The stage named in the first hop (default ingress). */
  stage?: string;
  /** The authenticated submission identity (RFC 4954), carried as client.auth. */
  auth?: { user: string; method: string };
}

/** MAIL FROM with the parameters later stages need (the egress' DSNs, SMTPUTF8 relay). */
export function mailFromOf(address: string, params: Record<string, string | true>): MailFrom {
  const out: MailFrom = { address };
  const size = params['SIZE'];
  if (typeof size === 'string' && /^\d{1,20}$/.test(size)) out.size = Number(size); // RFC 1870
  const body = params['BODY'];
  if (typeof body === 'string') {
    const b = body.toUpperCase();
    if (b === '7BIT' || b === '8BITMIME') out.body = b; // RFC 6152
  }
  if (params['SMTPUTF8'] === true) out.smtputf8 = true; // RFC 6531
  const ret = params['RET'];
  if (typeof ret === 'string') {
    const r = ret.toUpperCase();
    if (r === 'FULL' || r === 'HDRS') out.ret = r; // RFC 3461 §4.3
  }
  const envid = params['ENVID'];
  if (typeof envid === 'string') out.envid = envid; // RFC 3461 §4.4
  if (params['REQUIRETLS'] === true) out.requireTls = true; // RFC 8689 §4.1: tag the message
  return out;
}

export function buildEnvelope(t: TransactionFacts): Envelope {
  const recipients: Recipient[] = t.recipients.map((r) => {
    const rcpt: Recipient = { address: r.address, original: r.original, status: 'pending' };
    if (r.notify && r.notify.length > 0) rcpt.notify = r.notify as Recipient['notify'];
    if (r.orcpt) rcpt.orcpt = r.orcpt;
    return rcpt;
  });
  const client: Envelope['client'] = { ip: t.client.ip, helo: t.client.helo };
  if (t.client.port !== undefined) client.port = t.client.port;
  if (t.client.tls) client.tls = t.client.tls;
  if (t.auth) client.auth = t.auth;
  const env: Envelope = {
    v: 1,
    id: t.queueId,
    receivedAt: t.receivedAt.toISOString(),
    source: t.source ?? 'mx',
    receivedBy: t.receivedBy,
    client,
    mailFrom: mailFromOf(t.mailFrom, t.mailParams),
    recipients,
    body: t.body,
    prepend: [],
    hops: [{ stage: t.stage ?? 'ingress', instance: t.instance, at: t.receivedAt.toISOString() }],
  };
  if (t.traceparent) env.trace = { traceparent: t.traceparent };
  return env;
}

/** W3C traceparent of a span context (version 00), or undefined for an invalid (all-zero) context. */
export function traceparentOf(ctx: {
  traceId: string;
  spanId: string;
  traceFlags: number;
}): string | undefined {
  if (/^0+$/.test(ctx.traceId) || /^0+$/.test(ctx.spanId)) return undefined;
  return `00-${ctx.traceId}-${ctx.spanId}-${(ctx.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/**
 * The Message-ID header of the message, for the timeline (RFC 5322 §3.6.4),
 * read from the header section only and bounded; undefined if absent.
 */
export function messageIdOf(body: Uint8Array): string | undefined {
  const head = Buffer.from(body.buffer, body.byteOffset, Math.min(body.byteLength, 64 * 1024)).toString(
    'latin1',
  );
  const end = head.indexOf('\r\n\r\n');
  const section = end >= 0 ? head.slice(0, end + 2) : head;
  const m = /(?:^|\r\n)message-id[ \t]*:((?:[^\r\n]|\r\n[ \t])*)/i.exec(section);
  if (!m) return undefined;
  const value = m[1]!.replace(/\r\n[ \t]/g, ' ').trim();
  return value.length > 0 ? value.slice(0, 998) : undefined;
}
