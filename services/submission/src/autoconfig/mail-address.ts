/**
 * The address a client asks about (the `emailaddress` query parameter, the
 * Autodiscover EMailAddress): parsed with the same RFC 5321 parser the
 * SMTP services use, and accepted only for the configured mail domains. The
 * endpoint answers nothing about other domains (404), so it cannot be used to
 * make Sluice vouch for somebody else's mail service.
 */
import { parseMailbox } from '@sluice/smtp';

/** Longer than any usable address (RFC 5321 §4.5.3.1: 64 + 1 + 255): refused before parsing. */
export const MAX_ADDRESS_LENGTH = 320;

export interface CheckedAddress {
  /** local@domain, domain lower-case A-labels. */
  address: string;
  localPart: string;
  domain: string;
}

export type AddressCheck =
  | { ok: true; value: CheckedAddress }
  /** 400: not an address at all; 404: an address, but not in one of our domains. */
  | { ok: false; status: 400 | 404; reason: string };

export function addressInDomains(raw: string, domains: readonly string[]): AddressCheck {
  const input = raw.trim();
  if (input.length === 0) return { ok: false, status: 400, reason: 'no email address given' };
  if (input.length > MAX_ADDRESS_LENGTH) return { ok: false, status: 400, reason: 'email address too long' };
  const parsed = parseMailbox(input, { strictLocalPartLength: true });
  if (!parsed.ok) return { ok: false, status: 400, reason: `not an email address: ${parsed.reason}` };
  const m = parsed.mailbox;
  if (m.domainKind !== 'domain')
    return { ok: false, status: 400, reason: 'address literals are not mail domains' };
  // Old relay syntax (user%other@ours) is never routed by Sluice: nothing to configure for it.
  if (m.routingCharacters) return { ok: false, status: 400, reason: 'routing characters in the local part' };
  if (!domains.includes(m.domain)) return { ok: false, status: 404, reason: 'not a domain served here' };
  return { ok: true, value: { address: m.address, localPart: m.localPart, domain: m.domain } };
}

/** An address a document builder cannot describe; `status` is the HTTP answer the endpoint gives. */
export class AddressRefused extends Error {
  readonly status: 400 | 404;
  constructor(status: 400 | 404, reason: string) {
    super(reason);
    this.name = 'AddressRefused';
    this.status = status;
  }
}

/** The checked address, or AddressRefused. */
export function requireAddressInDomains(raw: string, domains: readonly string[]): CheckedAddress {
  const r = addressInDomains(raw, domains);
  if (!r.ok) throw new AddressRefused(r.status, r.reason);
  return r.value;
}
