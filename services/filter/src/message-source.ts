/**
 * What the authentication checks read of a large (object-store) body. DKIM
 * (RFC 6376 §3.7) and ARC (RFC 8617 §4.1.2: the AMS carries a body hash) are
 * the only checks that need the body; SPF needs the envelope, DMARC the From
 * header. So the header section is read first (one or two object chunks):
 * when it is complete within HEADER_WINDOW and carries no DKIM-Signature or
 * ARC header, the checks get the header section alone and the rest of the
 * body is never read (mailauth's results are the same: no signature to
 * verify). Otherwise they get the whole body as a stream (what was read,
 * then the rest), so a signed 20 MB message is hashed as it passes and is
 * never held whole.
 */
import { Readable } from 'node:stream';

/** Header sections longer than this are streamed whole, signatures or not. */
export const HEADER_WINDOW = 64 * 1024;

const SIGNATURE_FIELD =
  /(?:^|\r\n)(?:dkim-signature|arc-seal|arc-message-signature|arc-authentication-results)[ \t]*:/i;

export async function authenticationSource(body: Readable): Promise<Buffer | Readable> {
  const iterator = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const read: Buffer[] = [];
  let bytes = 0;
  let ended = false;
  while (bytes < HEADER_WINDOW) {
    const r = await iterator.next();
    if (r.done) {
      ended = true;
      break;
    }
    read.push(r.value);
    bytes += r.value.length;
    const head = Buffer.concat(read).toString('latin1', 0, Math.min(bytes, HEADER_WINDOW));
    const end = head.indexOf('\r\n\r\n');
    if (end >= 0) {
      const section = head.slice(0, end + 2);
      if (SIGNATURE_FIELD.test(section)) break;
      body.destroy(); // nothing below the headers matters to the checks
      return Buffer.from(`${section}\r\n`, 'latin1');
    }
  }
  async function* replay(): AsyncGenerator<Buffer> {
    yield* read;
    if (ended) return;
    for (;;) {
      const r = await iterator.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return Readable.from(replay(), { objectMode: false });
}
