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
 *
 * The body is returned exactly as received (dot-unstuffed), never rewritten.
 */
import type { Readable } from 'node:stream';
import { type BareNewline, BareNewlineScanner } from '@sluice/smtp';

export type MessageRead =
  | { kind: 'ok'; body: Buffer }
  | { kind: 'too-big'; bytes: number }
  | { kind: 'bare-newline'; found: BareNewline; bytes: number };

/** Read the DATA stream to its end. Rejects only if the stream fails (client gone). */
export async function readMessage(
  stream: Readable & { sizeExceeded?: boolean },
  maxBytes: number,
): Promise<MessageRead> {
  const chunks: Buffer[] = [];
  const scanner = new BareNewlineScanner();
  let bytes = 0;
  let keeping = true;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (!keeping) continue;
    if (bytes > maxBytes || stream.sizeExceeded || scanner.push(chunk)) {
      keeping = false;
      chunks.length = 0; // refused either way: do not hold the data
      continue;
    }
    chunks.push(chunk);
  }
  if (bytes > maxBytes || stream.sizeExceeded) return { kind: 'too-big', bytes };
  const found = scanner.end();
  if (found) return { kind: 'bare-newline', found, bytes };
  return { kind: 'ok', body: Buffer.concat(chunks, bytes) };
}
