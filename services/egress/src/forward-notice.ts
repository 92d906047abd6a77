/**
 * The notice to the owner of a forward whose target refused forwarded mail
 * for good (e.g. a 550 5.7.26 DMARC refusal): no MTA would tell them
 * otherwise, since the bounce goes to the original sender. Pure builder.
 *
 * Privacy (decisions/0018): the owner learns only what tells them their
 * forward is broken — the date the message arrived, the sender's DOMAIN, the
 * target and the remote reply (quoted safely, dsn.ts fieldText). Not the
 * sender's full address, the subject or any content: the message was not
 * necessarily theirs to read (an alias of several people, a role address).
 */
import { fieldText, rfc5322Date } from './dsn.ts';

export interface ForwardNoticeInput {
  reportingMta: string;
  from: string;
  owner: string;
  target: string;
  senderDomain: string;
  arrivalDate: Date;
  reply: string;
  remoteMta: string;
  noticeQueueId: string;
  now: Date;
}

export function buildForwardNotice(n: ForwardNoticeInput): Buffer {
  const head = [
    `From: Mail Delivery System <${fieldText(n.from, 300)}>`,
    `To: <${fieldText(n.owner, 500)}>`,
    `Subject: Your forward to ${fieldText(n.target, 300)} is refusing mail`,
    `Date: ${rfc5322Date(n.now)}`,
    `Message-ID: <${n.noticeQueueId}@${fieldText(n.reportingMta, 255)}>`,
    // RFC 3834 §5: generated automatically; never to be answered automatically.
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
  ];
  const text = [
    `This is the mail system at ${fieldText(n.reportingMta)}.`,
    '',
    `Mail for ${fieldText(n.owner, 500)} is forwarded to ${fieldText(n.target, 500)}, and that`,
    'server refused a forwarded message permanently. The sender was told; the',
    'message was not delivered to the forward target.',
    '',
    `  Arrived:      ${rfc5322Date(n.arrivalDate)}`,
    `  Sender domain: ${fieldText(n.senderDomain, 255)}`,
    `  Refused by:   ${fieldText(n.remoteMta, 255)}`,
    `  Reply:        ${fieldText(n.reply, 900)}`,
    '',
    'If this happens often, the forward target may be refusing forwarded mail',
    '(for example a DMARC policy check): consider changing the forward.',
    'You get at most a few of these notices per day.',
  ];
  return Buffer.from(`${head.join('\r\n')}\r\n\r\n${text.join('\r\n')}\r\n`);
}
