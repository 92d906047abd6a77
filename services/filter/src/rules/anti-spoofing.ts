/**
 * Spoofing of our own domains: a message from outside (the MX door) whose
 * author (RFC 5322 From) is in one of our domains must prove it with DMARC
 * pass (an aligned SPF or DKIM pass, RFC 9989 §4). Our own users come in by
 * the submission door (authenticated), our trusted hosts by the relay door
 * and our own DSNs are made inside; those envelope sources are exempt.
 * Subdomains of our domains count as ours. Everything else claiming our
 * domains without DMARC pass is forged or broken: refused outright
 * (antiSpoofing.action "reject") or weighed with FROM_OURS_UNAUTHENTICATED.
 */
import type { Envelope, RuleHit } from '@sluice/proto';
import type { RuleWeights } from '../authentication.ts';
import type { HeaderFieldView } from '../header-block.ts';

/** Doors whose messages are ours by construction (authenticated users, trusted relays). */
const TRUSTED_SOURCES = new Set<Envelope['source']>(['submission', 'relay', 'dsn']);

/**
 * Domains of every mailbox in the From fields (lower case), however many
 * there are (RFC 5322 §3.4: mailbox = name-addr / addr-spec). Quoted strings
 * and comments are dropped first; a mailbox with an angle address counts by
 * that address only, so a display name like "alice@example.org via List"
 * does not make a list's message look like ours — DMARC evaluates the same
 * address.
 */
export function authorDomains(fields: HeaderFieldView[]): string[] {
  const out = new Set<string>();
  for (const f of fields) {
    if (f.name !== 'from') continue;
    const bare = f.value.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\([^()]*\)/g, ' ');
    for (const mailbox of bare.split(/,(?![^<]*>)/)) {
      const angle = /<([^>]*)>/.exec(mailbox);
      const addr = angle ? angle[1]! : mailbox;
      const m = /@\s*([A-Za-z0-9.-]+)/.exec(addr);
      if (m) out.add(m[1]!.replace(/\.$/, '').toLowerCase());
    }
  }
  return [...out];
}

export interface SpoofCheck {
  /** The hit, when the author claims one of our domains without DMARC pass from outside. */
  hit?: RuleHit;
}

export function antiSpoofing(
  env: Pick<Envelope, 'source'>,
  fields: HeaderFieldView[],
  dmarc: string,
  ourDomains: ReadonlySet<string>,
  weights: RuleWeights,
): SpoofCheck {
  if (TRUSTED_SOURCES.has(env.source)) return {};
  const ours = authorDomains(fields).filter((d) => isOurs(d, ourDomains));
  if (ours.length === 0 || dmarc === 'pass') return {};
  return {
    hit: {
      name: 'FROM_OURS_UNAUTHENTICATED',
      score: weights.FROM_OURS_UNAUTHENTICATED ?? 0,
      detail: `From: ${ours.join(', ')} from outside, dmarc=${dmarc}`,
    },
  };
}

function isOurs(domain: string, ourDomains: ReadonlySet<string>): boolean {
  for (const o of ourDomains) if (domain === o || domain.endsWith(`.${o}`)) return true;
  return false;
}
