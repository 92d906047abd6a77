/**
 * Envelope addresses as the resolver compares them. An address splits at its
 * last "@" (a quoted local part may itself contain one, RFC 5321 §4.1.2); the
 * domain is case-insensitive (RFC 5321 §2.4) and is compared in lower-case
 * ASCII form (an internationalised domain becomes its A-label, RFC 5890), with
 * a trailing root dot dropped. The local part is case-sensitive in the RFC
 * (§2.4) but, as Postfix does by default, we compare it case-insensitively:
 * "Info@" and "info@" are the same alias. The case the sender used is kept for
 * delivery to an outside address, where the receiving host decides.
 */
import { domainToASCII } from 'node:url';

export interface ParsedAddress {
  /** The local part as given. */
  local: string;
  /** Lower-case ASCII domain without a trailing dot. */
  domain: string;
  /** The comparison key: lower-case local part @ domain. */
  key: string;
}

/** The comparison form of a domain: lower case, A-label, no trailing dot. */
export function normalizeDomain(domain: string): string {
  const lower = domain.toLowerCase().replace(/\.$/, '');
  // Domain literals ([192.0.2.1], RFC 5321 §4.1.3) and plain ASCII pass unchanged.
  if (lower.startsWith('[') || /^[\x21-\x7e]*$/.test(lower)) return lower;
  return domainToASCII(lower) || lower;
}

/**
 * Split and normalise an address; null when it has no local part or no domain.
 * Addresses reach the resolver already parsed and canonicalised by the
 * ingress (@sluice/smtp parseMailbox: quotes only where needed), so a split
 * at the last "@" agrees with it.
 */
export function parseAddress(address: string): ParsedAddress | null {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  const local = address.slice(0, at);
  const domain = normalizeDomain(address.slice(at + 1));
  if (domain.length === 0) return null;
  return { local, domain, key: `${local.toLowerCase()}@${domain}` };
}

/** The address written with its normalised domain and the local part as given. */
export function formatAddress(a: ParsedAddress): string {
  return `${a.local}@${a.domain}`;
}
