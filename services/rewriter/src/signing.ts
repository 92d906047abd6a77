/**
 * DKIM signing and ARC sealing of a part, over the message as it will leave
 * (the prepended headers, then the stored body, unchanged except for the
 * envelope's removeHeaders, which the egress leaves out too: assembleMessage).
 * Both add headers at the front of `prepend`; the body is never rewritten.
 *
 * DKIM (docs/dkim.md): mail whose header From is one of our domains is
 * signed with that domain's active keys (RSA and Ed25519: two signatures).
 * Mail that came in by the MX with our From is signed only when the filter
 * found it DMARC-aligned (auth.dmarc = pass): otherwise signing would give
 * a forged "From: ceo@ours" our signature — or when the From is ours because
 * this stage just rewrote it (from-rewrite.ts, ctx.fromRewritten), which runs
 * first, so DKIM and then ARC's AMS cover the new From. Outcomes that leave a message
 * unsigned are logged and counted (sluice_rewrites_total{step="dkim"}) and
 * the message is still sent — a missing signature is not worth a bounce:
 *   several From fields / several author domains / a From without a domain;
 *   no active key for the domain; unauthenticated MX mail with our From;
 *   every active key of the domain set aside because DNS publishes another
 *   key or none for its selector (published-keys.ts).
 *
 * ARC (RFC 8617): a part from the MX leaving for an outside destination is a
 * forward; it is sealed with arc.selector of arc.domain (default the primary
 * domain's active RSA key). AAR = the filter's Authentication-Results; cv =
 * the chain as the filter validated it at receipt (envelope.auth.arc).
 * Sealing failures forward unsealed, logged and counted.
 *
 * A large body (in the object store) that will not be sealed is not loaded:
 * the caller streams it (bus.openBody) through streamedMessageParts
 * (libs/dkim), and DKIM signs over its header block and streamed body hash
 * (`StreamedBody`). ARC sealing (mailauth) needs the whole message, so a part
 * that will be sealed is loaded whole (needsWholeBody).
 */
import type { DkimKey, DkimKeyring } from '@sluice/dkim';
import { arcSeal, authorDomain, dkimSignatureOffThread, type HeaderField, splitMessage } from '@sluice/dkim';
import type { Envelope, PrependHeader } from '@sluice/proto';
import { assembleMessage, formatPrependHeaders, headerField, withoutHeaderFields } from '@sluice/smtp';
import { isExternalRoute } from './rewrite.ts';

export interface SigningContext {
  keyring: DkimKeyring;
  /** dkim.headers, or undefined for the default list. */
  headers?: readonly string[];
  /** x= offset, seconds (0: none). */
  expiresInSeconds: number;
  /** The sealing key, or undefined when ARC is off or no key is configured. */
  arcKey?: DkimKey;
  ourDomains: ReadonlySet<string>;
  now: () => Date;
  /**
   * The From was rewritten to ours by this stage (from-rewrite.ts): the author
   * is us, so MX mail is signed without the DMARC-pass requirement below.
   */
  fromRewritten?: boolean;
  /** Active keys whose published record is missing or different (published-keys.ts): not used. */
  setAside?: ReadonlySet<DkimKey>;
}

export type DkimOutcome =
  | 'signed'
  | 'not-ours'
  | 'unsigned-no-key'
  | 'unsigned-key-not-published'
  | 'unsigned-unauthenticated'
  | `unsigned-${string}`;
export type ArcOutcome = 'sealed' | 'not-forward' | 'off' | 'unsealed';

export interface SigningResult {
  envelope: Envelope;
  changes: string[];
  dkim: DkimOutcome;
  arc: ArcOutcome;
  /** A reason worth a warning in the log (unsigned our-domain mail, a failed seal). */
  warnings: string[];
}

const CV = new Set(['none', 'pass', 'fail']);

/** A stored message read as a stream: its header block and the relaxed hash of its body (streamedMessageParts). */
export interface StreamedBody {
  head: Buffer;
  bodyHash: string;
}

/** Will signAndSeal seal this part (ARC: mailauth needs the whole message)? */
export function needsWholeBody(env: Envelope, ctx: Pick<SigningContext, 'arcKey' | 'ourDomains'>): boolean {
  return ctx.arcKey !== undefined && env.source === 'mx' && isExternalRoute(env.route, ctx.ourDomains);
}

/** The header fields as the message will leave (prepended, then stored) and what DKIM hashes of the body. */
function signingInput(
  prepend: Envelope['prepend'],
  body: Uint8Array | StreamedBody,
  remove: Envelope['removeHeaders'],
): { headers: HeaderField[]; bodyPart: Uint8Array | { bodyHash: string } } {
  if (body instanceof Uint8Array) {
    const { headers, body: bodyPart } = splitMessage(assembleMessage(prepend, body, remove));
    return { headers, bodyPart };
  }
  // The fields the egress leaves out (removeHeaders) are left out of what DKIM signs too.
  const head = remove?.length ? Buffer.from(withoutHeaderFields(body.head, remove)) : body.head;
  const { headers } = splitMessage(
    Buffer.concat([formatPrependHeaders(prepend), head, Buffer.from('\r\n\r\n')]),
  );
  return { headers, bodyPart: { bodyHash: body.bodyHash } };
}

export async function signAndSeal(
  env: Envelope,
  body: Uint8Array | StreamedBody,
  ctx: SigningContext,
): Promise<SigningResult> {
  const changes: string[] = [];
  const warnings: string[] = [];
  let prepend = env.prepend;
  const now = ctx.now();

  // DKIM.
  let dkim: DkimOutcome = 'not-ours';
  const { headers, bodyPart } = signingInput(prepend, body, env.removeHeaders);
  const author = authorDomain(headers);
  if (!author.ok) {
    // Say so only when a From of ours is involved; foreign mail with a broken From is not ours to sign.
    const fromOurs = headers.some(
      (h) =>
        h.name.toLowerCase() === 'from' &&
        [...ctx.ourDomains].some((d) => h.raw.toLowerCase().includes(`@${d}`)),
    );
    if (fromOurs) {
      dkim = `unsigned-${author.reason}`;
      warnings.push(`not DKIM-signed: ${author.reason}`);
      changes.push(`dkim: not signed (${author.reason})`);
    }
  } else if (ctx.ourDomains.has(author.domain)) {
    const configured = ctx.keyring.activeFor(author.domain);
    const keys = configured.filter((k) => !ctx.setAside?.has(k));
    if (env.source === 'mx' && env.auth?.dmarc !== 'pass' && !ctx.fromRewritten) {
      dkim = 'unsigned-unauthenticated';
      warnings.push(`not DKIM-signed: From ${author.domain} via the MX without DMARC pass`);
      changes.push('dkim: not signed (our From, but not authenticated as ours)');
    } else if (keys.length === 0 && configured.length > 0) {
      dkim = 'unsigned-key-not-published';
      warnings.push(`not DKIM-signed: the keys of ${author.domain} do not match their DNS records`);
      changes.push(`dkim: not signed (keys of ${author.domain} not as published in DNS)`);
    } else if (keys.length === 0) {
      dkim = 'unsigned-no-key';
      warnings.push(`not DKIM-signed: no active key for ${author.domain} in dkim.keys`);
      changes.push(`dkim: not signed (no active key for ${author.domain})`);
    } else {
      // Signed on the thread pool, every key at once (dkimSignatureOffThread).
      const sigs = await Promise.all(
        keys.map(async (k) =>
          headerField(
            'DKIM-Signature',
            await dkimSignatureOffThread(headers, bodyPart, k, {
              headers: ctx.headers,
              now,
              expiresInSeconds: ctx.expiresInSeconds,
            }),
            'rewriter',
          ),
        ),
      );
      prepend = [...sigs, ...prepend];
      dkim = 'signed';
      changes.push(`dkim: signed d=${author.domain} s=${keys.map((k) => k.selector).join(',')}`);
    }
  }

  // ARC.
  let arc: ArcOutcome = 'not-forward';
  if (env.source === 'mx' && isExternalRoute(env.route, ctx.ourDomains)) {
    if (!ctx.arcKey) arc = 'off';
    else if (!(body instanceof Uint8Array)) {
      // The caller streams only what needsWholeBody says will not be sealed.
      arc = 'unsealed';
      warnings.push('not ARC-sealed: the body was streamed');
      changes.push('arc: not sealed (body streamed)');
    } else {
      const ar = prepend.find((h) => h.name.toLowerCase() === 'authentication-results');
      const authResults = ar
        ? ar.value.replace(/\r\n/g, '').replace(/\s+/g, ' ').trim()
        : summaryResults(env);
      const chain = env.auth?.arcChain?.result ?? env.auth?.arc ?? 'none';
      const cv = (CV.has(chain) ? chain : 'fail') as 'none' | 'pass' | 'fail';
      const r = await arcSeal(assembleMessage(prepend, body, env.removeHeaders), {
        key: ctx.arcKey,
        authResults,
        cv,
        now,
      });
      if (r.ok) {
        const set: PrependHeader[] = r.headers.map((h) => headerField(h.name, h.value, 'rewriter'));
        prepend = [...set, ...prepend];
        arc = 'sealed';
        changes.push(`arc: sealed cv=${cv} d=${ctx.arcKey.domain} s=${ctx.arcKey.selector}`);
      } else {
        arc = 'unsealed';
        warnings.push(`not ARC-sealed: ${r.reason}`);
        changes.push(`arc: not sealed (${r.reason})`);
      }
    }
  }
  return { envelope: { ...env, prepend }, changes, dkim, arc, warnings };
}

/** An authres payload from the envelope's summary, when the filter's header is missing (RFC 8601 §2.2). */
function summaryResults(env: Envelope): string {
  const a = env.auth;
  if (!a) return `${env.receivedBy}; none`;
  const dkim =
    a.dkim.length > 0 ? a.dkim.map((d) => `dkim=${d.result} header.d=${d.domain}`).join('; ') : 'dkim=none';
  return `${env.receivedBy}; spf=${a.spf}; ${dkim}; dmarc=${a.dmarc}`;
}
