/**
 * The mail of the signing variants (Sluice + SRS + DKIM beside Postfix +
 * postsrsd + OpenDKIM), as text (pure): DKIM signing only applies to mail
 * whose From is one of our domains, so in those variants the message's From
 * is sender@in.test on both sides (OpenDKIM signs per its signing table,
 * Sluice per its keys for the From's domain), while the envelope sender stays
 * foreign to our SRS (sender@mail.in.test: not one of Sluice's domains, not
 * postsrsd's -d in.test), so both systems also rewrite it with SRS.
 *
 * Sluice signs mail that came in by its MX with our From only when the filter
 * found it DMARC-aligned (anti-forgery, services/rewriter/src/signing.ts):
 * the bench's DNS publishes SPF for mail.in.test and a DMARC record for
 * in.test, so SPF passes and aligns (relaxed, RFC 7489 §3.1.2). It also
 * publishes Sluice's DKIM public keys, which the rewriter checks before
 * using a key (published-keys.ts).
 */
import { IN_DOMAIN, sourceRecipient } from './postfix-config.ts';

export const SIGNED_SENDER = `sender@mail.${IN_DOMAIN}`;
export const SIGNED_FROM = `sender@${IN_DOMAIN}`;

/** The DNS records the signing variants need (besides the DKIM keys'). */
export function signedMailRecords(): Array<{ name: string; type: 'TXT'; data: string }> {
  return [
    { name: `mail.${IN_DOMAIN}`, type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    { name: `_dmarc.${IN_DOMAIN}`, type: 'TXT', data: 'v=DMARC1; p=none' },
  ];
}

/**
 * Message number `n` of a signing variant (CRLF lines, no line starts with a
 * dot): headers with our From and a Message-ID of its own, then a body of
 * 76-character lines up to about `bytes` in all, the size smtp-source's -l
 * gives the other variants. Each message differs (its Message-ID): Sluice's
 * MX takes a second identical message from the same client for a resend of
 * the first and queues it once (proto/src/dedup-ids.ts), which is why these
 * variants cannot use smtp-source -F, one file sent over and over.
 */
export function signedMessage(bytes: number, n: number): string {
  const head = [
    `From: <${SIGNED_FROM}>`,
    `To: <${sourceRecipient(1)}>`,
    'Subject: bench',
    'Date: Mon, 30 Nov 2026 04:00:00 +0000',
    `Message-ID: <${n}.bench@mail.${IN_DOMAIN}>`,
    '',
  ].join('\r\n');
  const line = 'x'.repeat(76);
  const lines = Math.max(1, Math.ceil((bytes - head.length) / (line.length + 2)));
  return `${head}\r\n${Array.from({ length: lines }, () => line).join('\r\n')}\r\n`;
}

/**
 * What is wrong with a message as a signing variant delivered it to the sink
 * (smtp-sink's dump: X-Mail-Args, then the message), or nothing: the
 * envelope sender must be an SRS address and there must be `signatures`
 * DKIM-Signature fields with d=in.test. The bench refuses figures of a
 * variant that did not do the work it is named after.
 */
export function signedDumpProblems(dump: string, o: { signatures: number }): string[] {
  const problems: string[] = [];
  const mailArgs = /^X-Mail-Args: (.*)$/im.exec(dump)?.[1] ?? '';
  if (!/<SRS0[=+-]/i.test(mailArgs))
    problems.push(`envelope sender not SRS-rewritten: ${mailArgs || 'none'}`);
  const headerBlock = dump.split(/\r?\n\r?\n/)[0] ?? '';
  const fields = headerBlock.split(/\r?\n(?![ \t])/);
  const ours = fields.filter(
    (f) => /^DKIM-Signature:/i.test(f) && new RegExp(`[;\\s]d=${IN_DOMAIN.replace('.', '\\.')}\\s*;`).test(f),
  );
  if (ours.length !== o.signatures)
    problems.push(`${ours.length} DKIM signatures of ${IN_DOMAIN}, expected ${o.signatures}`);
  return problems;
}
