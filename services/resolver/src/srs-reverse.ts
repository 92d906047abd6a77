/**
 * Bounces to our SRS addresses (libs/srs): the reverse direction of a
 * forward's sender rewriting. A message to SRS0=...@<srs domain> goes back
 * to the original sender, SRS1=... to the first forwarder's SRS0 address.
 *
 * Only the null sender may use an SRS address (RFC 5321 §4.5.5: bounces are
 * sent with an empty reverse-path): anything else is someone replaying an
 * address they saw to push mail through us (RELIABILITY-NOTES §2), refused.
 * A forged, expired, malformed or hash-only address is refused with the
 * reason; the caller answers 550 at RCPT or dead-letters after acceptance.
 * `mailFrom` undefined (`sluice lookup` without a sender) shows the reversal.
 */
import { Srs, toExternalForm, toInternalForm } from '@sluice/srs';
import { normalizeDomain } from './address.ts';

export interface SrsTable {
  domain: string;
  codec: Srs;
}

export type SrsRecipient =
  | { kind: 'not-srs' }
  | { kind: 'reversed'; address: string; trail: string }
  | { kind: 'refused'; reason: string; trail: string };

export function buildSrsTable(opts: {
  domain: string | undefined;
  secrets: readonly string[];
  maxAgeDays: number;
  hashLength: number;
  separator: '=' | '+' | '-';
}): SrsTable | undefined {
  if (!opts.domain || opts.secrets.length === 0) return undefined;
  return {
    domain: opts.domain,
    codec: new Srs({
      domain: opts.domain,
      secrets: opts.secrets,
      maxAgeDays: opts.maxAgeDays,
      hashLength: opts.hashLength,
      separator: opts.separator,
    }),
  };
}

export function reverseSrsRecipient(
  srs: SrsTable | undefined,
  address: string,
  mailFrom: string | undefined,
  now: Date = new Date(),
): SrsRecipient {
  if (!srs) return { kind: 'not-srs' };
  const at = address.lastIndexOf('@');
  if (at <= 0 || normalizeDomain(address.slice(at + 1)) !== srs.domain) return { kind: 'not-srs' };
  if (mailFrom !== undefined && mailFrom !== '') {
    const reason = 'SRS addresses accept only bounces (null sender)';
    return { kind: 'refused', reason, trail: `${address}: ${reason}` };
  }
  // SRS works on the unquoted form (libs/srs address-form.ts); the result is quoted where needed.
  const r = srs.codec.reverse(toInternalForm(address), now);
  if (!r.ok) return { kind: 'refused', reason: r.reason, trail: `${address}: ${r.reason}` };
  const back = toExternalForm(r.address);
  return { kind: 'reversed', address: back, trail: `${address} is an ${r.form} address: back to ${back}` };
}
