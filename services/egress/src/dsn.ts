/**
 * Builds a delivery status notification: the bytes of an RFC 6522
 * multipart/report with report-type=delivery-status (RFC 3464), ready to be
 * queued like any other message. Pure: no bus, no config, no clock of its own,
 * so the report's shape is tested on its own and the decision of whether to
 * send one lives elsewhere (notify-sender.ts).
 *
 * Everything that came from outside (remote replies, addresses, ENVID,
 * ORCPT, the original subject) is written through `fieldText`, which removes
 * CR, LF, NUL and every other control or non-ASCII byte: a remote server's
 * reply can never inject a header field or a MIME boundary into our report.
 */
import { type DsnAction, queueIdTime } from '@sluice/proto';

/** One per-recipient block (RFC 3464 §2.3). */
export interface DsnRecipient {
  /** §2.3.2 Final-Recipient: the address we tried. */
  finalRecipient: string;
  /** §2.3.1 Original-Recipient: the ORCPT parameter as given ("rfc822;user@example.net"). */
  orcpt?: string;
  action: DsnAction;
  /** The last reply ("550 5.1.1 no such user"): its codes give Status, its text Diagnostic-Code. */
  reply: string;
  /** §2.3.5 Remote-MTA: the host that gave `reply`, when a remote one did ("mx1.example.net:25"). */
  remoteMta?: string;
  /** §2.3.7 Last-Attempt-Date. */
  lastAttempt: Date;
  /** §2.3.8 Will-Retry-Until: for a delayed recipient, when we give up. */
  willRetryUntil?: Date;
}

export interface DsnInput {
  /** Our hostname: Reporting-MTA (§2.2.2) and the Message-ID's right side. */
  reportingMta: string;
  /** From: of the report (MAILER-DAEMON@...). */
  from: string;
  /** The envelope sender of the original message: To: of the report. */
  to: string;
  /** The original message's queue id (named in the text part). */
  queueId: string;
  /** The DSN's own queue id (its Message-ID). */
  dsnQueueId: string;
  /** §2.2.5 Arrival-Date. */
  arrivalDate: Date;
  /** §2.2.1 Original-Envelope-Id (ENVID). */
  envid?: string;
  recipients: DsnRecipient[];
  /** The original message as it was sent (prepended headers + body). */
  original: Uint8Array;
  /** RFC 3461 §4.3 RET: HDRS returns the headers only; FULL (default) the whole message. */
  ret?: 'FULL' | 'HDRS';
  /** A FULL return bigger than this returns the headers only. */
  returnContentMaxBytes: number;
  now: Date;
}

/** What a field value may hold: printable ASCII, one line, bounded. */
export function fieldText(value: string, max = 900): string {
  const clean = value.replace(/[^\x20-\x7e]+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max - 3)}...` : clean;
}

/**
 * The RFC 3463 status of a reply: its enhanced code when it has one whose
 * class matches the basic code, else class.0.0 from the basic code (RFC 3464
 * §2.3.4); 2.0.0 for a success without a reply.
 */
export function statusOf(reply: string, action: DsnAction): string {
  const m = /^([2-5])\d\d[ -]([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(reply);
  if (m && m[1] === m[2]) return `${m[2]}.${m[3]}.${m[4]}`;
  const basic = /^([2-5])\d\d\b/.exec(reply);
  if (basic) return `${basic[1]}.0.0`;
  if (action === 'delivered' || action === 'relayed') return '2.0.0';
  if (action === 'delayed') return '4.0.0';
  return '5.0.0';
}

/** RFC 3464 §2.3.6 Diagnostic-Code: "smtp; <reply>" for an SMTP reply, quoted safely. */
export function diagnosticCode(reply: string): string | undefined {
  const text = fieldText(reply);
  if (text.length === 0) return undefined;
  return /^[2-5]\d\d\b/.test(text) ? `smtp; ${text}` : `X-Sluice; ${text}`;
}

/** RFC 5322 §3.3 date-time. */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

/** The header block of a message (up to and including the blank line), or all of it if there is none. */
export function headerBlock(message: Uint8Array): Buffer {
  const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf <= lf)) return buf.subarray(0, crlf + 4);
  if (lf >= 0) return buf.subarray(0, lf + 2);
  return buf;
}

function subjectFor(actions: DsnAction[]): string {
  if (actions.includes('failed')) return 'Undelivered Mail Returned to Sender';
  if (actions.includes('delayed')) return 'Delayed Mail (still being retried)';
  return 'Successful Mail Delivery Report';
}

function humanText(input: DsnInput): string {
  const failed = input.recipients.filter((r) => r.action === 'failed');
  const delayed = input.recipients.filter((r) => r.action === 'delayed');
  const ok = input.recipients.filter((r) => r.action === 'delivered' || r.action === 'relayed');
  const lines = [`This is the mail system at ${fieldText(input.reportingMta)}.`, ''];
  if (failed.length > 0) {
    lines.push('Your message could not be delivered to the recipients below. This is a permanent error.');
  }
  if (delayed.length > 0) {
    lines.push('Your message has not been delivered yet to the recipients below. The mail system');
    lines.push('will keep trying; you do not need to send it again. This is only a warning.');
  }
  if (ok.length > 0) lines.push('Your message was delivered (or passed on) to the recipients below.');
  lines.push('', `Queue id: ${input.queueId}`, '');
  for (const r of input.recipients) {
    lines.push(`<${fieldText(r.finalRecipient, 500)}>: ${r.action}`);
    const reply = fieldText(r.reply, 500);
    if (reply) lines.push(`    ${r.remoteMta ? `${fieldText(r.remoteMta, 200)} said: ` : ''}${reply}`);
  }
  return lines.join('\r\n');
}

/** The message/delivery-status part's body (RFC 3464 §2.1: per-message fields, then one block per recipient). */
export function deliveryStatus(input: DsnInput): string {
  const blocks: string[][] = [];
  const perMessage = [`Reporting-MTA: dns; ${fieldText(input.reportingMta, 255)}`];
  if (input.envid) perMessage.push(`Original-Envelope-Id: ${fieldText(input.envid, 100)}`);
  perMessage.push(`Arrival-Date: ${rfc5322Date(input.arrivalDate)}`);
  blocks.push(perMessage);
  for (const r of input.recipients) {
    const b: string[] = [];
    if (r.orcpt) {
      // RFC 3461 §4.2 ORCPT is "addr-type;xtext": kept as given (§2.3.1).
      const orcpt = fieldText(r.orcpt, 500);
      b.push(`Original-Recipient: ${orcpt.includes(';') ? orcpt : `rfc822; ${orcpt}`}`);
    }
    b.push(`Final-Recipient: rfc822; ${fieldText(r.finalRecipient, 500)}`);
    b.push(`Action: ${r.action}`);
    b.push(`Status: ${statusOf(r.reply, r.action)}`);
    if (r.remoteMta) b.push(`Remote-MTA: dns; ${fieldText(r.remoteMta, 255)}`);
    const diag = diagnosticCode(r.reply);
    if (diag) b.push(`Diagnostic-Code: ${diag}`);
    b.push(`Last-Attempt-Date: ${rfc5322Date(r.lastAttempt)}`);
    if (r.action === 'delayed' && r.willRetryUntil)
      b.push(`Will-Retry-Until: ${rfc5322Date(r.willRetryUntil)}`);
    blocks.push(b);
  }
  return blocks.map((b) => b.join('\r\n')).join('\r\n\r\n');
}

/** The whole report, CRLF line ends. */
export function buildDsn(input: DsnInput): Buffer {
  const boundary = `${input.dsnQueueId}/${fieldText(input.reportingMta, 60).replace(/[^A-Za-z0-9.-]/g, '')}`;
  const actions = input.recipients.map((r) => r.action);
  const full = input.ret !== 'HDRS' && input.original.byteLength <= input.returnContentMaxBytes;
  // RFC 3461 §4.3 / RFC 3464 §2: RET=HDRS (or a message over the size cap) returns the headers only.
  const returned = full ? Buffer.from(input.original) : headerBlock(input.original);
  const eightBit = returned.some((b) => b > 0x7f);
  const head = [
    `From: Mail Delivery System <${fieldText(input.from, 300)}>`,
    `To: <${fieldText(input.to, 500)}>`,
    `Subject: ${subjectFor(actions)}`,
    `Date: ${rfc5322Date(input.now)}`,
    `Message-ID: <${input.dsnQueueId}@${fieldText(input.reportingMta, 255)}>`,
    // RFC 3834 §5: an automatic reply; nobody should answer it automatically.
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
    ...(eightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
  ];
  const parts = [
    `${head.join('\r\n')}\r\n\r\nThis is a MIME-encapsulated delivery status notification.\r\n`,
    `--${boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n${humanText(input)}\r\n`,
    `--${boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n${deliveryStatus(input)}\r\n`,
    full
      ? `--${boundary}\r\nContent-Description: Undelivered message\r\nContent-Type: message/rfc822${eightBit ? '\r\nContent-Transfer-Encoding: 8bit' : ''}\r\n\r\n`
      : `--${boundary}\r\nContent-Description: Message headers\r\nContent-Type: text/rfc822-headers${eightBit ? '\r\nContent-Transfer-Encoding: 8bit' : ''}\r\n\r\n`,
  ];
  const tail = Buffer.from(`${returned.at(-1) === 0x0a ? '' : '\r\n'}\r\n--${boundary}--\r\n`);
  return Buffer.concat([Buffer.from(parts.join('')), returned, tail]);
}

/** The arrival date of a message: its receivedAt, else the time in its queue id. */
export function arrivalOf(env: { id: string; receivedAt: string }): Date {
  const t = Date.parse(env.receivedAt);
  return new Date(Number.isFinite(t) ? t : queueIdTime(env.id));
}
