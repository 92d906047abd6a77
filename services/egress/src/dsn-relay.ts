/**
 * The RFC 3461 parameters the egress passes on to the next hop (§5.2.1:
 * relay to a conforming SMTP server): RET and ENVID on MAIL FROM, NOTIFY
 * and ORCPT on each RCPT TO. smtp-session.ts sends them only when the
 * server advertises DSN; when it did, that server (and the hops after it)
 * reports success from then on, so we send no "relayed" DSN ourselves:
 * that one is for relaying to a server without DSN (§5.2.2, notify-sender.ts).
 *
 * ORCPT (§4.2): passed on as received; when the client gave none, the
 * address as it arrived in RCPT TO is added ("it MUST contain the recipient
 * address from the RCPT command used when the message was received"), as
 * rfc822 only when it is ASCII (a UTF-8 address needs the utf-8 type of
 * RFC 6533, which we do not write).
 */
import type { Envelope } from '@sluice/proto';
import type { TransactionDsn } from './smtp-session.ts';

const ASCII = /^[\x21-\x7e]+$/;

export function dsnToPassOn(env: Pick<Envelope, 'mailFrom' | 'recipients'>): TransactionDsn {
  const recipients = new Map<string, { notify?: readonly string[]; orcpt?: string }>();
  for (const r of env.recipients) {
    const orcpt = r.orcpt ?? (ASCII.test(r.original) ? `rfc822;${r.original}` : undefined);
    recipients.set(r.address, {
      ...(r.notify && r.notify.length > 0 ? { notify: r.notify } : {}),
      ...(orcpt ? { orcpt } : {}),
    });
  }
  return {
    ...(env.mailFrom.ret ? { ret: env.mailFrom.ret } : {}),
    ...(env.mailFrom.envid ? { envid: env.mailFrom.envid } : {}),
    recipients,
  };
}
