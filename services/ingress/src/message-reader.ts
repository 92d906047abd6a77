/**
 * Reading the message after DATA, with the two checks the transfer itself
 * needs, before anything is stored or published:
 *
 * - Size (RFC 1870): smtp-server advertises SIZE and refuses a declared SIZE
 *   over the limit at MAIL FROM, but only flags an oversized transfer
 *   (`stream.sizeExceeded`). We count too, stop keeping bytes past the limit
 *   (the rest is read and dropped, so the session stays in sync) and the
 *   caller answers 552 5.3.4.
 * - Bare line ends (RFC 5321 §2.3.8, SMTP smuggling): smtp-server ends DATA
 *   only on CRLF.CRLF but passes bare LF and bare CR through in the body. A
 *   message containing one is refused whole, so no downstream server that
 *   treats "\n.\n" as end-of-data can ever see a second, smuggled message.
 * - NUL octets and lines over 998 octets (RFC 5322 §2.1.1, RFC 5321
 *   §4.5.3.1.6): smtp-server passes both. NUL is a smuggling tool
 *   ("\r\n\0.\r\n" ends DATA for some C servers) and downstream MTAs
 *   truncate or split long lines differently; the message is refused whole.
 *
 * The body is returned exactly as received (dot-unstuffed), never rewritten.
 */
import type { Readable } from 'node:stream';
import { type BareNewline, BareNewlineScanner } from '@sluice/smtp';

export type MessageRead =
  | { kind: 'ok'; body: Buffer }
  | { kind: 'too-big'; bytes: number }
  | { kind: 'bare-newline'; found: BareNewline; bytes: number }
  | { kind: 'bad-content'; found: 'nul' | 'long-line'; bytes: number };

/** RFC 5322 §2.1.1: at most 998 characters per line, excluding the CRLF. */
export const MAX_LINE_OCTETS = 998;

/** Finds the first NUL or over-long line across chunk boundaries. */
export class ContentScanner {
  private lineLength = 0;
  found: 'nul' | 'long-line' | undefined;

  push(chunk: Buffer): boolean {
    if (this.found) return true;
    if (chunk.includes(0)) {
      this.found = 'nul';
      return true;
    }
    let start = 0;
    for (;;) {
      const lf = chunk.indexOf(0x0a, start);
      const end = lf < 0 ? chunk.length : lf;
      this.lineLength += end - start;
      // The CR of the CRLF is still counted here (a bare CR is the other scanner's refusal).
      if (this.lineLength > MAX_LINE_OCTETS + 1) {
        this.found = 'long-line';
        return true;
      }
      if (lf < 0) return false;
      this.lineLength = 0;
      start = lf + 1;
    }
  }
}

/** Read the DATA stream to its end. Rejects only if the stream fails (client gone). */
export async function readMessage(
  stream: Readable & { sizeExceeded?: boolean },
  maxBytes: number,
): Promise<MessageRead> {
  const chunks: Buffer[] = [];
  const scanner = new BareNewlineScanner();
  const content = new ContentScanner();
  let bytes = 0;
  let keeping = true;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (!keeping) continue;
    if (bytes > maxBytes || stream.sizeExceeded || scanner.push(chunk) || content.push(chunk)) {
      keeping = false;
      chunks.length = 0; // refused either way: do not hold the data
      continue;
    }
    chunks.push(chunk);
  }
  if (bytes > maxBytes || stream.sizeExceeded) return { kind: 'too-big', bytes };
  const found = scanner.end();
  if (found) return { kind: 'bare-newline', found, bytes };
  if (content.found) return { kind: 'bad-content', found: content.found, bytes };
  return { kind: 'ok', body: Buffer.concat(chunks, bytes) };
}
