/**
 * Which RCPT TO addresses the MX takes: never an open relay, never an
 * accept-all.
 *
 * First, without asking anyone: the address must be a valid RFC 5321 mailbox
 * in one of our domains (primary or alias). Everything else is refused with
 * 554 5.7.1 "Relay access denied": other domains, address literals (even our
 * own IP: mail for a literal is relaying by another name), and local parts
 * with `%` or `!` (the old relay-routing syntax, refused like Postfix'
 * allow_untrusted_routing=no; `"u@evil"@ours` never parses as ours because
 * smtp-server refuses an address with two "@"). Source routes never arrive:
 * smtp-server strips them as RFC 5321 §4.1.2 / Appendix C require, so
 * `<@ours:u@evil>` is `u@evil`, foreign.
 *
 * Then the resolver decides (the LookupReply of proto rpc.ts): ok -> accept;
 * unknown -> 550 5.1.1; foreign -> 554 5.7.1; tempfail, a timeout, no
 * responder or an unreadable answer -> 451 4.3.0 (the client retries; we
 * never guess).
 */
import { lookupReplySchema } from '@sluice/proto';
import { type Mailbox, parseMailbox, type SmtpError, safeReplyText, smtpError } from '@sluice/smtp';

export interface OurDomains {
  primary: string;
  /** primary and aliases, lower case ASCII. */
  all: ReadonlySet<string>;
}

export function ourDomains(primary: string, aliases: readonly string[]): OurDomains {
  return { primary, all: new Set([primary, ...aliases].map((d) => d.toLowerCase())) };
}

export type RecipientCheck =
  | { kind: 'lookup'; mailbox: Mailbox }
  | { kind: 'refuse'; error: SmtpError; reason: 'syntax' | 'relay' | 'routing-syntax' | 'address-literal' };

/** The local checks of a RCPT TO argument (as smtp-server parsed it, without angle brackets). */
export function checkRecipient(
  address: string,
  domains: OurDomains,
  opts: { smtputf8?: boolean } = {},
): RecipientCheck {
  // RFC 5321 §4.1.1.3: "Postmaster" without a domain must be accepted; it is ours.
  const full = /^postmaster$/i.test(address) ? `postmaster@${domains.primary}` : address;
  const parsed = parseMailbox(full, { smtputf8: opts.smtputf8 });
  if (!parsed.ok) {
    // A source route would be refused here too; smtp-server has already removed it.
    return { kind: 'refuse', error: smtpError('badRecipientSyntax'), reason: 'syntax' };
  }
  const m = parsed.mailbox;
  if (m.domainKind !== 'domain')
    return { kind: 'refuse', error: smtpError('relayDenied'), reason: 'address-literal' };
  if (!domains.all.has(m.domain)) return { kind: 'refuse', error: smtpError('relayDenied'), reason: 'relay' };
  if (m.routingCharacters)
    return { kind: 'refuse', error: smtpError('relayDenied'), reason: 'routing-syntax' };
  return { kind: 'lookup', mailbox: m };
}

export type LookupDecision = { kind: 'accept' } | { kind: 'refuse'; error: SmtpError; reason: string };

const decoder = new TextDecoder();

/** Turn the resolver's answer, or the failure to get one, into the RCPT reply. */
export function lookupDecision(answer: { data: Uint8Array } | { error: unknown }): LookupDecision {
  if ('error' in answer)
    return { kind: 'refuse', error: smtpError('tempLookup'), reason: 'lookup-unavailable' };
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(answer.data));
  } catch {
    return { kind: 'refuse', error: smtpError('tempLookup'), reason: 'lookup-unreadable' };
  }
  const reply = lookupReplySchema.safeParse(raw);
  if (!reply.success) return { kind: 'refuse', error: smtpError('tempLookup'), reason: 'lookup-unreadable' };
  switch (reply.data.result) {
    case 'ok':
      return { kind: 'accept' };
    case 'unknown':
      // A routing.reject entry carries its own text (printable ASCII, checked by the config schema).
      if (reply.data.rejectText) {
        const text = safeReplyText(reply.data.rejectText);
        return { kind: 'refuse', error: smtpError('unknownUser', text), reason: 'rejected-address' };
      }
      return { kind: 'refuse', error: smtpError('unknownUser'), reason: 'unknown-user' };
    case 'foreign':
      return { kind: 'refuse', error: smtpError('relayDenied'), reason: 'relay' };
    case 'tempfail':
      return { kind: 'refuse', error: smtpError('tempLookup'), reason: 'lookup-tempfail' };
  }
}

const encoder = new TextEncoder();

/** The LookupRequest (proto rpc.ts) as JSON. */
export function encodeLookupRequest(address: string, mailFrom?: string): Uint8Array {
  // The sender lets the resolver accept its SRS addresses for bounces only.
  return encoder.encode(
    JSON.stringify(mailFrom === undefined ? { v: 1, address } : { v: 1, address, mailFrom }),
  );
}
