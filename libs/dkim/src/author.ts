/**
 * The author domain of a message (RFC5322.From, RFC 7489 §3.1.1): whose
 * domain a DKIM signature of ours must carry to align. Parsed as mailauth's
 * DMARC check parses it (nodemailer's addressparser and mailauth's author
 * domain rules), so we sign exactly what receivers will evaluate. Several
 * From fields, several author domains, or no domain: no author domain, with
 * the reason (RELIABILITY-NOTES §2: never guess on From confusion).
 */
import { createRequire } from 'node:module';
import { fieldValue, type HeaderField } from './message-headers.ts';

const require = createRequire(import.meta.url);
type Mailbox = { address?: string; name?: string; group?: Mailbox[] };
const addressparser = require('nodemailer/lib/addressparser') as (s: string) => Mailbox[];
const { getAuthorDomain } = require('mailauth/lib/dmarc/author-domain.js') as {
  getAuthorDomain: (
    from: string[],
    fields: number,
  ) => { domain?: string; authorDomain?: string; reason?: string; domains?: string[] };
};

export type AuthorDomain =
  | { ok: true; domain: string }
  | {
      ok: false;
      reason:
        | 'no-from'
        | 'multiple-from-fields'
        | 'multiple-author-domains'
        | 'no-author-domain'
        | 'invalid-author-domain';
    };

export function authorDomain(headers: readonly HeaderField[]): AuthorDomain {
  const from = headers.filter((h) => h.name.toLowerCase() === 'from');
  if (from.length === 0) return { ok: false, reason: 'no-from' };
  if (from.length > 1) return { ok: false, reason: 'multiple-from-fields' };
  const addresses: string[] = [];
  for (const m of addressparser(fieldValue(from[0]!).trim())) {
    for (const box of m.group ?? [m]) if (box.address) addresses.push(box.address);
  }
  const r = getAuthorDomain(addresses, from.length);
  if (r.domain) return { ok: true, domain: r.domain.toLowerCase() };
  const reason = (r.reason ?? 'no-author-domain') as Exclude<AuthorDomain, { ok: true }>['reason'];
  return { ok: false, reason };
}

/** The mailboxes of a From (or any address) field value, parsed as authorDomain parses them (groups flattened). */
export function parseMailboxes(value: string): { name: string; address: string }[] {
  const out: { name: string; address: string }[] = [];
  for (const m of addressparser(value.trim())) {
    for (const box of m.group ?? [m]) {
      if (box.address) out.push({ name: box.name ?? '', address: box.address });
    }
  }
  return out;
}
