/**
 * Optional From rewriting of forwarded mail (rewriter.fromRewrite, off by
 * default; docs/srs.md "Forwarding mail from p=reject domains"), as mailing
 * lists do (RFC 7960 §4.1.3.1): the message leaves with a From of ours and
 * the author in Reply-To, so the receiver's DMARC check evaluates OUR domain,
 * which our DKIM signature (signing.ts, run after this) aligns with.
 *
 * When (all must hold; planFromRewrite returns the first that does not):
 *   - rewriter.fromRewrite.enabled;
 *   - the part leaves our organisation (isExternalRoute) — a forward: only
 *     forwards reach an outside route with a foreign From by the MX;
 *   - every recipient of the part has a forwardOwner (set by the resolver),
 *     and every such owner opts in (fromRewrite.forwards, or "*"). A part
 *     mixing opted-in and other recipients is left alone: one message, one From;
 *   - the author domain (exactly one From field with one domain, as DMARC
 *     reads it: @sluice/dkim authorDomain) is not ours;
 *   - the filter saw that domain publish p=reject or p=quarantine
 *     (auth.dmarcDetail.policy). No policy recorded: no rewrite — this stage
 *     does no DNS of its own;
 *   - no DKIM signature aligned with the author domain passed at receipt.
 *     Whether a signature will survive the next hop cannot be known here; a
 *     passing aligned signature usually survives a plain forward (we change
 *     neither the body nor the signed headers), and then the receiver's DMARC
 *     passes on it: rewriting would only lose the author's identity. With
 *     none, the forward fails DMARC at the receiver for certain (SPF is
 *     ours after SRS and never aligns), so p=reject mail would bounce.
 *
 * How (the stored body is never rewritten): the body's From (index 0) goes
 * into removeHeaders; prepended are `From: "<name> via <primary>" <ours>`
 * (RFC 5322 §3.4 quoted display name, RFC 2047 §5 encoded words when the
 * name is not ASCII; built with headerField, so no CR/LF can slip in),
 * `Reply-To:` the original From value, unless the message already has a
 * Reply-To — the author chose where replies go, we keep it (RFC 5322 §3.6.2)
 * — and `X-Original-From:` the original From value, so the author stays
 * visible even when the kept Reply-To names someone else.
 */
import { authorDomain, fieldValue, type HeaderField, parseMailboxes } from '@sluice/dkim';
import type { Envelope, HeaderRemoval, PrependHeader } from '@sluice/proto';
import { headerField } from '@sluice/smtp';
import { isExternalRoute } from './rewrite.ts';

export interface FromRewriteConfig {
  enabled: boolean;
  /** Forward owners that opt in, or "*". */
  forwards: readonly string[];
  /** Fixed new From address; default: the forward owner's address. */
  address?: string;
  /** Template: {name} = original display name or address, {domain} = our primary domain. */
  displayName: string;
}

export interface FromRewriteContext {
  config: FromRewriteConfig;
  ourDomains: ReadonlySet<string>;
  primaryDomain: string;
}

export type FromRewriteSkip =
  | 'off'
  | 'not-external'
  | 'not-forward'
  | 'not-opted-in'
  | 'several-forward-owners'
  | 'no-author-domain'
  | 'our-author'
  | 'no-strict-policy'
  | 'aligned-dkim-pass';

export type FromRewritePlan =
  | { rewrite: true; prepend: PrependHeader[]; removeHeaders: HeaderRemoval[]; from: string; change: string }
  | { rewrite: false; skip: FromRewriteSkip };

const lower = (s: string) => s.toLowerCase();
const domainOf = (address: string) => lower(address.slice(address.lastIndexOf('@') + 1)).replace(/\.$/, '');

/** Envelope-only checks (no body needed): the new From address, or why not. */
export function fromRewriteCandidate(
  env: Envelope,
  ctx: FromRewriteContext,
): { ok: true; address: string } | { ok: false; skip: FromRewriteSkip } {
  const cfg = ctx.config;
  if (!cfg.enabled) return { ok: false, skip: 'off' };
  if (!isExternalRoute(env.route, ctx.ourDomains)) return { ok: false, skip: 'not-external' };
  const owners = env.recipients.map((r) => r.forwardOwner);
  if (owners.some((o) => o === undefined)) return { ok: false, skip: 'not-forward' };
  const optedIn = new Set(cfg.forwards.map(lower));
  if (!optedIn.has('*') && !owners.every((o) => optedIn.has(lower(o!))))
    return { ok: false, skip: 'not-opted-in' };
  if (cfg.address) return { ok: true, address: cfg.address };
  const distinct = new Set(owners.map((o) => lower(o!)));
  if (distinct.size !== 1) return { ok: false, skip: 'several-forward-owners' };
  return { ok: true, address: owners[0]! };
}

/**
 * Does an aligned signature pass? The filter's `aligned` when it recorded one;
 * otherwise relaxed alignment (RFC 7489 §3.1.1) approximated without a public
 * suffix list: same domain, or one a subdomain of the other.
 */
function alignedDkimPass(env: Envelope, author: string): boolean {
  return (env.auth?.dkim ?? []).some((d) => {
    if (d.result !== 'pass') return false;
    if (d.aligned !== undefined) return d.aligned;
    const sd = domainOf(`@${d.domain}`);
    return sd === author || author.endsWith(`.${sd}`) || sd.endsWith(`.${author}`);
  });
}

/** What to change, from the envelope and the header fields of the stored body. */
export function planFromRewrite(
  env: Envelope,
  bodyHeaders: readonly HeaderField[],
  ctx: FromRewriteContext,
): FromRewritePlan {
  const candidate = fromRewriteCandidate(env, ctx);
  if (!candidate.ok) return { rewrite: false, skip: candidate.skip };
  const author = authorDomain(bodyHeaders);
  if (!author.ok) return { rewrite: false, skip: 'no-author-domain' };
  if (ctx.ourDomains.has(author.domain)) return { rewrite: false, skip: 'our-author' };
  const policy = env.auth?.dmarcDetail?.policy;
  const detailDomain = env.auth?.dmarcDetail?.domain;
  if (
    (policy !== 'reject' && policy !== 'quarantine') ||
    (detailDomain && lower(detailDomain) !== author.domain)
  ) {
    return { rewrite: false, skip: 'no-strict-policy' };
  }
  if (alignedDkimPass(env, author.domain)) return { rewrite: false, skip: 'aligned-dkim-pass' };

  const fromField = bodyHeaders.find((h) => lower(h.name) === 'from')!;
  const original = fieldValue(fromField).trim();
  const first = parseMailboxes(original.replace(/\r\n(?=[ \t])/g, ''))[0];
  const name = decodeWords(first?.name ?? '').trim() || first?.address || author.domain;
  const display = ctx.config.displayName.replaceAll('{name}', name).replaceAll('{domain}', ctx.primaryDomain);
  const from = `${displayPhrase(display)} <${candidate.address}>`;
  const prepend = [headerField('From', from, 'rewriter')];
  if (!bodyHeaders.some((h) => lower(h.name) === 'reply-to')) {
    prepend.push(headerField('Reply-To', original, 'rewriter'));
  }
  prepend.push(headerField('X-Original-From', original, 'rewriter'));
  return {
    rewrite: true,
    prepend,
    removeHeaders: [{ name: 'From', index: 0, reason: 'from-rewrite (DMARC p=' + policy + ')' }],
    from: candidate.address,
    change: `from: rewritten to ${candidate.address} (author domain ${author.domain} p=${policy}, no aligned DKIM pass)`,
  };
}

/** A display name as an RFC 5322 §3.2.4 quoted-string, or RFC 2047 §5(3) encoded words when not ASCII. */
export function displayPhrase(name: string): string {
  // One line, no control characters: a display name never carries them.
  const clean = name.replace(/[\0-\x1f\x7f]+/g, ' ').trim();
  if (/^[\x20-\x7e]*$/.test(clean)) return `"${clean.replace(/(["\\])/g, '\\$1')}"`;
  // RFC 2047 §2: an encoded word is at most 75 characters; split on whole characters
  // (never inside a UTF-8 sequence, §5) and fold between words.
  const words: string[] = [];
  let chunk = '';
  for (const ch of clean) {
    if (Buffer.byteLength(chunk + ch) > 45) {
      words.push(chunk);
      chunk = '';
    }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w).toString('base64')}?=`).join('\r\n ');
}

/** Decode RFC 2047 encoded words in a display name (B and Q, any charset TextDecoder knows). */
export function decodeWords(text: string): string {
  // §6.2: white space between adjacent encoded words is dropped.
  return text
    .replace(/(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)/g, '$1')
    .replace(
      /=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=/g,
      (word, charset: string, enc: string, data: string) => {
        try {
          const bytes =
            lower(enc) === 'b'
              ? Buffer.from(data, 'base64')
              : Buffer.from(
                  data
                    .replace(/_/g, ' ')
                    .replace(/=([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))),
                  'latin1',
                );
          return new TextDecoder(charset).decode(bytes);
        } catch {
          return word;
        }
      },
    );
}
