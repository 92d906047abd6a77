/**
 * The replies the egress writes itself, for outcomes no remote server
 * answered: DNS says the domain takes no mail, no host could be reached, the
 * connection broke, the message expired. They have the shape of an SMTP
 * reply (basic code, RFC 3463 enhanced code, text) so the timeline, the
 * ledger and the future DSN (RFC 3464 Diagnostic-Code) treat them like a
 * remote reply; the text says "(sluice)" so nobody mistakes them for one.
 * Texts are single-line printable ASCII (nothing we write may carry CR/LF).
 */
import { formatReply, safeReplyText } from '@sluice/smtp';

const local = (code: number, enhanced: string, text: string) =>
  formatReply({ code, enhanced, text: safeReplyText(`(sluice) ${text}`, 400) });

export const localReplies = {
  /** RFC 7505 §3-4 and RFC 7504 §3: a null MX domain accepts no mail: 556 5.1.10. */
  nullMx: (domain: string) => local(556, '5.1.10', `${domain} publishes a null MX: it accepts no mail`),
  /** NXDOMAIN for the destination domain: RFC 3463 X.1.2 bad destination system address. */
  noSuchDomain: (domain: string) => local(550, '5.1.2', `domain ${domain} does not exist (DNS NXDOMAIN)`),
  /** Neither MX nor A/AAAA (RFC 5321 §5.1): nowhere to deliver. */
  noMailHost: (domain: string) => local(550, '5.1.2', `${domain} has no MX and no address records`),
  /** DNS failed temporarily: RFC 3463 X.4.3 directory (routing) server failure. */
  dnsFailure: (what: string, code: string) => local(451, '4.4.3', `DNS lookup of ${what} failed (${code})`),
  /** The MX hosts have no usable address: RFC 3463 X.4.4 unable to route. */
  noAddress: (domain: string) => local(451, '4.4.4', `no address found for the mail hosts of ${domain}`),
  /** No candidate host accepted a session: RFC 3463 X.4.1 no answer from host. */
  connectFailed: (detail: string) => local(451, '4.4.1', `could not open an SMTP session: ${detail}`),
  /** The session broke after it was open: RFC 5321 §3.8 treats it as temporary; RFC 3463 X.4.2 bad connection. */
  connectionLost: (detail: string) => local(451, '4.4.2', `connection lost: ${detail}`),
  /** The whole attempt outran egress.attemptTimeout: RFC 3463 X.4.2 bad connection (Postfix: "conversation timed out"). */
  attemptTimedOut: (detail: string) => local(451, '4.4.2', `delivery attempt timed out: ${detail}`),
  /** The delivery queue failed the recipients on an operator's request (sluice queue bounce/delete): X.0.0. */
  operatorBounce: () => local(554, '5.0.0', 'returned to the sender by the postmaster (sluice queue bounce)'),
  operatorDelete: () => local(554, '5.0.0', 'deleted from the queue by the postmaster (sluice queue delete)'),
  /** The stored body could not be read (missing, or not what the envelope says): temporary, X.3.0. */
  bodyUnavailable: (detail: string) => local(451, '4.3.0', `message body could not be read: ${detail}`),
  /** egress.requireTls and the server offers no working STARTTLS: RFC 3463 X.7.10 encryption needed. */
  tlsRequired: (detail: string) => local(451, '4.7.10', `TLS required but not available: ${detail}`),
  /** DANE or MTA-STS could not authenticate the server (RFC 3463 X.7.5 cryptographic failure; temporary: the key may be rolling). */
  tlsAuthFailed: (detail: string) => local(451, '4.7.5', `TLS authentication failed: ${detail}`),
  /** The destination's TLS policy cannot be determined or forbids this host (RFC 7672 §2.2, RFC 8461 §5). */
  tlsPolicy: (detail: string) => local(451, '4.7.5', `TLS policy: ${detail}`),
  /**
   * REQUIRETLS (RFC 8689 §4.2.1): no authenticated TLS session with a valid MX
   * host could be had: "5.7.10 Encryption needed"; permanent (the message is
   * never sent otherwise, the sender gets a DSN).
   */
  requireTlsNoTls: (detail: string) => local(550, '5.7.10', `REQUIRETLS: ${detail}`),
  /** REQUIRETLS and the TLS-protected next hop does not offer REQUIRETLS: RFC 8689 §4.2.1, §6 "5.7.30". */
  requireTlsUnsupported: (host: string) =>
    local(550, '5.7.30', `REQUIRETLS support required: ${host} does not offer REQUIRETLS`),
  /** The server's SIZE (RFC 1870 §6.2) is smaller than the message: permanent, RFC 3463 X.3.4. */
  tooBig: (detail: string) => local(552, '5.3.4', `message too big for the destination: ${detail}`),
  /** The message outlived bus.queueLifetime: RFC 3463 X.4.7 delivery time expired. */
  expired: (days: string, lastReply: string) =>
    local(554, '5.4.7', `delivery time expired after ${days}; last reply: ${lastReply}`),
  /** An envelope address that can not be written into a command: RFC 3463 X.1.3 / X.1.7. */
  badRecipient: (why: string) => local(553, '5.1.3', `recipient address can not be sent: ${why}`),
  badSender: (why: string) => local(553, '5.1.7', `sender address can not be sent: ${why}`),
  /** The configured EHLO name is unusable: a configuration error, so temporary (X.3.5 system incorrectly configured). */
  badHeloName: () =>
    local(451, '4.3.5', 'egress.heloName / hostname contains CR, LF or NUL: fix the configuration'),
} as const;

/** One of our replies saying TLS could not be negotiated or authenticated (not a DNS or policy-lookup failure). */
export function isTlsSessionFailure(reply: string): boolean {
  return (
    /^451 4\.7\.10 \(sluice\) TLS required/.test(reply) ||
    /^451 4\.7\.5 \(sluice\) TLS authentication/.test(reply)
  );
}
