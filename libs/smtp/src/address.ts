/**
 * Strict RFC 5321 mailbox parsing for envelope addresses (MAIL FROM / RCPT TO
 * arguments without the angle brackets).
 *
 * The envelope is the only source of addresses Sluice routes on, so it goes
 * through this one parser (RELIABILITY-NOTES §2: address-parser confusion).
 * It splits local@domain per the §4.1.2 grammar, handles quoted local parts,
 * lowercases the domain and converts an IDN domain to its ASCII (A-label) form,
 * recognises address literals (§4.1.3), refuses source routes, and enforces the
 * §4.5.3.1 size limits. `%` and `!` are ordinary atext characters here: they
 * are never interpreted as routing (Postfix allow_untrusted_routing=no); the
 * result only reports their presence so the ingress can refuse such recipients.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';

/** RFC 5321 §4.1.2 Atom characters (RFC 5322 §3.2.3 atext). */
const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
/** The same, extended with UTF-8 for SMTPUTF8 sessions (RFC 6531 §3.3). */
const ATEXT_UTF8 = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+$/u;
/** §4.1.2 sub-domain = Let-dig [Ldh-str]; labels ≤ 63 octets (RFC 1035 §2.3.4). */
const SUB_DOMAIN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** RFC 5321 §4.5.3.1.2: the maximum total length of a domain name is 255 octets. */
export const MAX_DOMAIN_OCTETS = 255;
/** RFC 5321 §4.5.3.1.3: a reverse- or forward-path is at most 256 octets including the angle brackets. */
export const MAX_PATH_OCTETS = 256;
/** RFC 5321 §4.5.3.1.1: a local part is at most 64 octets (enforced only with `strictLocalPartLength`). */
export const MAX_LOCAL_PART_OCTETS = 64;

export type DomainKind = 'domain' | 'ipv4' | 'ipv6';

export interface Mailbox {
  /** Canonical local@domain: local part as given (case kept, §2.4), quotes only where needed. */
  address: string;
  /** The local part, unquoted (the quoted-pair escapes removed). */
  localPart: string;
  /** ASCII, lower case domain, or the address literal in brackets ("[192.0.2.1]", "[IPv6:2001:db8::1]"). */
  domain: string;
  domainKind: DomainKind;
  /** The local part contains `%` or `!`: old relay routing syntax, never interpreted, refused for our domains. */
  routingCharacters: boolean;
}

export type AddressProblem =
  | 'empty'
  | 'syntax'
  | 'source-route'
  | 'local-part'
  | 'domain'
  | 'address-literal'
  | 'too-long'
  | 'utf8-not-allowed';

/** Why an address was refused; `reason` is a short, client-safe explanation. */
export interface AddressFailure {
  ok: false;
  problem: AddressProblem;
  reason: string;
}

export type MailboxResult = { ok: true; mailbox: Mailbox } | AddressFailure;

export interface ParseOptions {
  /** The session negotiated SMTPUTF8 (RFC 6531): UTF-8 is allowed in the local part. */
  smtputf8?: boolean;
  /** Also enforce the 64-octet local-part limit of §4.5.3.1.1 (off: SRS and forwarding addresses exceed it). */
  strictLocalPartLength?: boolean;
}

const fail = (problem: AddressProblem, reason: string): AddressFailure => ({ ok: false, problem, reason });

/**
 * Parse an RFC 5321 §4.1.2 Mailbox: Local-part "@" ( Domain / address-literal ).
 * The null reverse-path is not a Mailbox: use parseReversePath for MAIL FROM.
 */
export function parseMailbox(input: string, opts: ParseOptions = {}): MailboxResult {
  if (input.length === 0) return fail('empty', 'empty address');
  if (/[\0-\x1f\x7f]/.test(input)) return fail('syntax', 'control characters in address');
  // §4.1.2 / Appendix C: "<@a,@b:user@d>" source routes. Refused here; never followed.
  if (input.startsWith('@')) return fail('source-route', 'source routes are not accepted');
  const at = splitAtDomain(input);
  if (!at) return fail('syntax', 'no "@" separating local part and domain');
  const local = parseLocalPart(at.local, opts.smtputf8 === true);
  if (!local.ok) return local;
  const domain = parseDomainPart(at.domain);
  if (!domain.ok) return domain;

  const address = `${local.text}@${domain.domain}`;
  // §4.5.3.1.3: the path, i.e. the address plus "<" and ">", is at most 256 octets.
  if (Buffer.byteLength(address, 'utf8') + 2 > MAX_PATH_OCTETS) {
    return fail('too-long', `address longer than ${MAX_PATH_OCTETS - 2} octets`);
  }
  if (opts.strictLocalPartLength && Buffer.byteLength(local.text, 'utf8') > MAX_LOCAL_PART_OCTETS) {
    return fail('too-long', `local part longer than ${MAX_LOCAL_PART_OCTETS} octets`);
  }
  return {
    ok: true,
    mailbox: {
      address,
      localPart: local.value,
      domain: domain.domain,
      domainKind: domain.kind,
      routingCharacters: /[%!]/.test(local.value),
    },
  };
}

export type ReversePathResult =
  | { ok: true; nullSender: true }
  | { ok: true; nullSender: false; mailbox: Mailbox };

/** MAIL FROM: the null reverse-path "" (§4.5.5, bounces) or a Mailbox. */
export function parseReversePath(input: string, opts: ParseOptions = {}): ReversePathResult | AddressFailure {
  if (input === '') return { ok: true, nullSender: true };
  const r = parseMailbox(input, opts);
  return r.ok ? { ok: true, nullSender: false, mailbox: r.mailbox } : r;
}

/**
 * Split at the "@" that separates the local part from the domain: the last "@"
 * outside a quoted string. A quoted local part may itself contain "@".
 */
function splitAtDomain(input: string): { local: string; domain: string } | undefined {
  let inQuotes = false;
  let split = -1;
  for (let i = 0; i < input.length; i++) {
    const ch = input[i];
    if (inQuotes && ch === '\\') {
      i++;
      continue;
    }
    if (ch === '"') inQuotes = !inQuotes;
    else if (ch === '@' && !inQuotes) split = i;
  }
  if (inQuotes || split <= 0 || split === input.length - 1) return undefined;
  return { local: input.slice(0, split), domain: input.slice(split + 1) };
}

type LocalPart = { ok: true; value: string; text: string } | AddressFailure;

/** §4.1.2 Local-part = Dot-string / Quoted-string. */
function parseLocalPart(raw: string, utf8: boolean): LocalPart {
  const atext = utf8 ? ATEXT_UTF8 : ATEXT;
  if (!utf8 && /[^\x00-\x7f]/.test(raw)) {
    return fail('utf8-not-allowed', 'non-ASCII local part without SMTPUTF8');
  }
  if (raw.startsWith('"')) {
    if (raw.length < 2 || !raw.endsWith('"')) return fail('local-part', 'unterminated quoted string');
    let value = '';
    const inner = raw.slice(1, -1);
    for (let i = 0; i < inner.length; i++) {
      const ch = inner[i]!;
      if (ch === '\\') {
        // quoted-pairSMTP = %d92 %d32-126
        const next = inner[i + 1];
        if (next === undefined || !/[\x20-\x7e]/.test(next)) {
          return fail('local-part', 'bad escape in quoted string');
        }
        value += next;
        i++;
      } else if (ch === '"') {
        return fail('local-part', 'unescaped quote in quoted string');
      } else if (/[\x20-\x7e]/.test(ch) || (utf8 && ch.charCodeAt(0) >= 0x80)) {
        value += ch; // qtextSMTP (RFC 6531 adds UTF-8)
      } else {
        return fail('local-part', 'invalid character in quoted string');
      }
    }
    if (value.length === 0) return fail('local-part', 'empty quoted local part');
    return { ok: true, value, text: canonicalLocalPart(value, atext) };
  }
  // Dot-string = Atom *("." Atom): no empty atoms, so no leading, trailing or double dots.
  const atoms = raw.split('.');
  if (atoms.some((a) => a.length === 0 || !atext.test(a))) {
    return fail('local-part', 'local part is not a dot-string of atext characters');
  }
  return { ok: true, value: raw, text: raw };
}

/**
 * The form to write a local part in: as a Dot-string when it is one (§4.1.2:
 * a Quoted-string that could be a Dot-string SHOULD be written as one), else
 * quoted with the minimum of escapes.
 */
function canonicalLocalPart(value: string, atext: RegExp): string {
  if (value.split('.').every((a) => a.length > 0 && atext.test(a))) return value;
  return `"${value.replace(/(["\\])/g, '\\$1')}"`;
}

type DomainPart = { ok: true; domain: string; kind: DomainKind } | AddressFailure;

function parseDomainPart(raw: string): DomainPart {
  if (raw.startsWith('[')) return parseAddressLiteral(raw);
  if (raw.endsWith('.')) return fail('domain', 'domain ends with a dot');
  // IDN: U-labels to A-labels (RFC 5890); domainToASCII returns '' for what is not a valid name.
  const ascii = /^[\x00-\x7f]*$/.test(raw) ? raw.toLowerCase() : domainToASCII(raw).toLowerCase();
  if (ascii.length === 0) return fail('domain', 'domain is not a valid (internationalised) domain name');
  if (ascii.length > MAX_DOMAIN_OCTETS) {
    return fail('too-long', `domain longer than ${MAX_DOMAIN_OCTETS} octets`);
  }
  const labels = ascii.split('.');
  if (labels.some((l) => !SUB_DOMAIN.test(l))) {
    return fail('domain', 'domain is not a sequence of letter-digit-hyphen labels');
  }
  return { ok: true, domain: ascii, kind: 'domain' };
}

/** §4.1.3: IPv4-address-literal "[a.b.c.d]" and IPv6-address-literal "[IPv6:...]". */
function parseAddressLiteral(raw: string): DomainPart {
  if (!raw.endsWith(']')) return fail('address-literal', 'unterminated address literal');
  const inner = raw.slice(1, -1);
  if (isIPv4(inner)) return { ok: true, domain: `[${inner}]`, kind: 'ipv4' };
  const v6 = /^ipv6:(.+)$/i.exec(inner);
  if (v6 && isIPv6(v6[1]!)) return { ok: true, domain: `[IPv6:${v6[1]!.toLowerCase()}]`, kind: 'ipv6' };
  // General-address-literal (a registered tag) is not used by any standard tag: refuse.
  return fail('address-literal', 'not an IPv4 or IPv6 address literal');
}
