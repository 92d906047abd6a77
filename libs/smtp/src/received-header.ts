/**
 * The Received header a receiving SMTP server adds (RFC 5321 §4.4 time stamp
 * line), in the layout Postfix uses so log and trace tooling reads it:
 *
 *   Received: from mail.example.org (mail.example.org [192.0.2.1])
 *           (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)
 *           by mx.example.net (Sluice) with ESMTPS id 01J...
 *           for <user@example.net>; Tue, 5 May 2026 10:00:00 +0000
 *
 * The with-protocol is from RFC 3848 (ESMTP, ESMTPA, ESMTPS, ESMTPSA; SMTP
 * after HELO; LMTP*) and RFC 6531 §3.7.3 (UTF8SMTP* when SMTPUTF8 was used).
 * "for" names the recipient only when there is exactly one: with several it
 * would disclose Bcc recipients to each other (§4.4, §7.2).
 *
 * Client-supplied values (HELO, the reverse name) never carry CR/LF or comment
 * delimiters into the header: a HELO that is not a domain or address literal
 * is replaced by the client's address literal and shown, defanged, in a comment.
 * The field is built with headerField, which refuses any CR, LF or NUL left
 * outside the folds (e.g. from a misconfigured host name) right here.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { PrependHeader } from '@sluice/proto';
import { headerField } from './header-field.ts';

export interface ReceivedOptions {
  /** The EHLO/HELO argument as the client gave it. */
  helo: string;
  /** true after EHLO (ESMTP), false after HELO (SMTP). */
  ehlo: boolean;
  clientIp: string;
  /**
   * Leave the client out (no "from" clause: neither HELO, address nor name), for
   * authenticated submission where the header would disclose where a user is.
   */
  hideClient?: boolean;
  /** The client's reverse DNS name, when looked up (and forward-confirmed). */
  reverseName?: string;
  /** The session's TLS, when STARTTLS or implicit TLS was used (RFC 3207). */
  tls?: { protocol: string; cipher: string };
  /** Leave the TLS protocol and cipher out (the with-protocol still says TLS was used). */
  hideTlsDetails?: boolean;
  /** The client authenticated (RFC 4954). */
  authenticated?: boolean;
  /** The client used SMTPUTF8 for this transaction (RFC 6531). */
  smtputf8?: boolean;
  lmtp?: boolean;
  /** Our host name. */
  receivedBy: string;
  /** Our queue id for the message. */
  queueId: string;
  /** The transaction's recipients; named in "for" only when there is exactly one. */
  recipients: readonly string[];
  date: Date;
  /** Which stage adds the header (PrependHeader.addedBy). */
  addedBy?: string;
}

/** RFC 3848 / RFC 6531 §3.7.3 with-protocol keyword. */
export function receivedProtocol(o: {
  ehlo: boolean;
  tls?: boolean;
  authenticated?: boolean;
  smtputf8?: boolean;
  lmtp?: boolean;
}): string {
  const suffix = `${o.tls ? 'S' : ''}${o.authenticated ? 'A' : ''}`;
  if (o.lmtp) return `${o.smtputf8 ? 'UTF8LMTP' : 'LMTP'}${suffix}`;
  if (o.smtputf8) return `UTF8SMTP${suffix}`;
  if (!o.ehlo && !suffix) return 'SMTP';
  return `ESMTP${suffix}`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** RFC 5322 §3.3 date-time, in UTC: "Tue, 5 May 2026 10:00:00 +0000". */
export function rfc5322Date(d: Date): string {
  return (
    `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`
  );
}

/** RFC 5321 §4.1.3 address literal for an IP: "[192.0.2.1]" or "[IPv6:2001:db8::1]". */
export function addressLiteral(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped && isIPv4(mapped[1]!)) return `[${mapped[1]}]`;
  if (isIPv4(ip)) return `[${ip}]`;
  if (isIPv6(ip)) return `[IPv6:${ip.toLowerCase()}]`;
  throw new RangeError(`not an IP address: ${JSON.stringify(ip)}`);
}

const DOMAIN =
  /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** A HELO argument usable as the Received from-domain: a domain or an address literal (§4.1.3, §4.4). */
export function isValidHeloName(helo: string): boolean {
  if (DOMAIN.test(helo)) return true;
  const lit = /^\[(.*)\]$/.exec(helo);
  if (!lit) return false;
  const inner = lit[1]!;
  if (isIPv4(inner)) return true;
  const v6 = /^IPv6:(.+)$/i.exec(inner);
  return v6 !== null && isIPv6(v6[1]!);
}

/** Printable ASCII without the comment delimiters "(", ")" and "\" (RFC 5322 §3.2.2 ctext), bounded. */
export function commentSafe(text: string, max = 100): string {
  const clean = text.replace(/[^\x21-\x27\x2a-\x5b\x5d-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

/** The Received header (name and folded value, no final CRLF). */
export function receivedHeader(o: ReceivedOptions): PrependHeader {
  const literal = addressLiteral(o.clientIp);
  const reverse = o.reverseName && DOMAIN.test(o.reverseName) ? `${o.reverseName} ` : '';
  const lines: string[] = [];
  if (o.hideClient) {
    // RFC 5321 §4.4 wants a From-domain; a privacy choice (decision 0026), as large providers make it.
  } else if (isValidHeloName(o.helo)) {
    lines.push(`from ${o.helo} (${reverse}${literal})`);
  } else {
    // §4.4 From-domain must be a Domain or an address literal: use the client's, show the HELO defanged.
    lines.push(`from ${literal} (${reverse}${literal})`);
    lines.push(o.helo.length > 0 ? `(HELO ${commentSafe(o.helo)})` : '(no HELO)');
  }
  if (o.tls && !o.hideTlsDetails) {
    lines.push(`(using ${commentSafe(o.tls.protocol, 40)} with cipher ${commentSafe(o.tls.cipher, 80)})`);
  }
  const protocol = receivedProtocol({
    ehlo: o.ehlo,
    tls: o.tls !== undefined,
    authenticated: o.authenticated,
    smtputf8: o.smtputf8,
    lmtp: o.lmtp,
  });
  if (!/^[0-9A-Z]+$/.test(o.queueId)) throw new RangeError(`queue id must be [0-9A-Z]: ${o.queueId}`);
  lines.push(`by ${o.receivedBy} (Sluice) with ${protocol} id ${o.queueId}`);
  const only = o.recipients.length === 1 ? o.recipients[0]! : undefined;
  const date = rfc5322Date(o.date);
  if (only !== undefined && !/[\0-\x1f\x7f<>]/.test(only)) {
    lines.push(`for <${only}>; ${date}`);
  } else {
    lines[lines.length - 1] += `; ${date}`;
  }
  return headerField('Received', lines.join('\r\n\t'), o.addedBy ?? 'ingress');
}
