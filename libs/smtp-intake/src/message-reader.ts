/**
 * Reading the message after DATA, with the checks the transfer itself needs,
 * done on the stream as it arrives (never on a whole buffer):
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
 *   The scanner carries its state from chunk to chunk (a CRLF split across
 *   two chunks is fine).
 * - NUL octets and lines over 998 octets (RFC 5322 §2.1.1, RFC 5321
 *   §4.5.3.1.6): smtp-server passes both. NUL is a smuggling tool
 *   ("\r\n\0.\r\n" ends DATA for some C servers) and downstream MTAs
 *   truncate or split long lines differently; the message is refused whole.
 * - Memory (ingress.maxBodyBytesInFlight): every byte held counts against the
 *   process' body budget (body-budget.ts), and so does, for a body that
 *   streams, the object-store client's buffer (streamBufferBytes); what the
 *   budget cannot cover refuses the message (the caller answers 452 4.3.1).
 *
 * A body up to `inlineLimit` is kept in memory (it travels inline with the
 * envelope). Once a body grows past it (or from the first byte, when the
 * client declared a larger SIZE), what is held and everything after it
 * streams into the object store chunk by chunk, as fast as JetStream takes
 * it (the client's socket is read no faster); a refusal half way abandons the
 * put, which leaves nothing in the store (storeBodyStream).
 *
 * The body is stored exactly as received (dot-unstuffed), never rewritten.
 */
import type { Readable } from 'node:stream';
import type { StoredBody } from '@sluice/bus';
import { type BareNewline, BareNewlineScanner } from '@sluice/smtp';
import type { BodyReservation } from './body-budget.ts';

/** The start of a streamed body kept for the timeline (Message-ID): headers are rarely longer. */
export const HEAD_BYTES = 64 * 1024;

export interface ReadOptions {
  /** ingress.maxMessageBytes. */
  maxBytes: number;
  /** Bodies up to this size are kept in memory; larger ones are streamed to `storeStream`. */
  inlineLimit: number;
  /**
   * The size the client declared at MAIL FROM (RFC 1870 SIZE=), if any. Over the inline limit,
   * the body streams from its first byte instead of being held up to the limit first.
   */
  declaredBytes?: number;
  /** This transaction's share of the body budget; the caller releases it when the transaction ends. */
  reservation: BodyReservation;
  /** Held against the budget while a body streams: what the store's client buffers (STREAM_BUFFER_BYTES). */
  streamBufferBytes?: number;
  /** Stream a large body into the object store (rethrows what `chunks` throws, leaves nothing then). */
  storeStream: (chunks: AsyncIterable<Uint8Array>) => Promise<StoredBody>;
}

export type MessageRead =
  /** Small enough to travel inline: the whole body. */
  | { kind: 'buffered'; body: Buffer }
  /** Streamed into the object store; `head` is its start (up to HEAD_BYTES). */
  | { kind: 'stored'; stored: StoredBody; bytes: number; head: Buffer }
  | { kind: 'too-big'; bytes: number }
  | { kind: 'bare-newline'; found: BareNewline; bytes: number }
  | { kind: 'bad-content'; found: 'nul' | 'long-line'; bytes: number }
  | { kind: 'over-budget'; bytes: number }
  | { kind: 'store-failed'; error: unknown; bytes: number };

type Refusal = Extract<MessageRead, { kind: 'too-big' | 'bare-newline' | 'bad-content' | 'over-budget' }>;

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

/** Thrown into the object-store put to abandon it; the refusal itself is kept aside. */
class BodyRefused extends Error {
  override name = 'BodyRefused';
}

/** Read the DATA stream to its end. Rejects only if the stream fails (client gone). */
export async function readMessage(
  stream: Readable & { sizeExceeded?: boolean },
  opts: ReadOptions,
): Promise<MessageRead> {
  // A manual iterator, never return()ed: leaving a for-await early would destroy the DATA stream.
  const source = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const scanner = new BareNewlineScanner();
  const content = new ContentScanner();
  let bytes = 0;

  const check = (chunk: Buffer): Refusal | undefined => {
    bytes += chunk.length;
    if (bytes > opts.maxBytes || stream.sizeExceeded) return { kind: 'too-big', bytes };
    const found = scanner.push(chunk);
    if (found) return { kind: 'bare-newline', found, bytes };
    if (content.push(chunk)) return { kind: 'bad-content', found: content.found!, bytes };
    if (!opts.reservation.grow(chunk.length)) return { kind: 'over-budget', bytes };
    return undefined;
  };
  const atEnd = (): Refusal | undefined => {
    const found = scanner.end();
    return found ? { kind: 'bare-newline', found, bytes } : undefined;
  };
  /** Refused: read the rest and drop it, so the reply comes after the client's final dot. */
  const dropRest = async <T extends MessageRead>(read: T): Promise<T> => {
    for (;;) {
      const r = await source.next();
      if (r.done) break;
      bytes += r.value.length;
    }
    return 'bytes' in read ? { ...read, bytes } : read;
  };

  const held: Buffer[] = [];
  let heldBytes = 0;
  const keepUpTo = (opts.declaredBytes ?? 0) > opts.inlineLimit ? 0 : opts.inlineLimit;
  while (heldBytes <= keepUpTo) {
    const r = await source.next();
    if (r.done) {
      const refused = atEnd();
      return refused ?? { kind: 'buffered', body: Buffer.concat(held, heldBytes) };
    }
    const refused = check(r.value);
    if (refused) {
      held.length = 0; // refused either way: do not hold the data
      return dropRest(refused);
    }
    held.push(r.value);
    heldBytes += r.value.length;
  }

  // Too large to travel inline: stream what is held, then the rest as it arrives.
  if (!opts.reservation.grow(opts.streamBufferBytes ?? 0)) {
    held.length = 0;
    return dropRest({ kind: 'over-budget', bytes });
  }
  const head = Buffer.concat(held, Math.min(heldBytes, HEAD_BYTES));
  let refusal: Refusal | undefined;
  let sourceError: unknown;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (let c = held.shift(); c; c = held.shift()) {
      yield c;
      opts.reservation.shrink(c.length); // the store asked for the next one: this one is handed on
    }
    for (;;) {
      const r = await source.next().catch((err: unknown) => {
        sourceError = err;
        throw err;
      });
      if (r.done) break;
      refusal = check(r.value);
      if (refusal) throw new BodyRefused(refusal.kind);
      yield r.value;
      opts.reservation.shrink(r.value.length);
    }
    refusal = atEnd();
    if (refusal) throw new BodyRefused(refusal.kind);
  }
  try {
    const stored = await opts.storeStream(chunks());
    return { kind: 'stored', stored, bytes, head };
  } catch (error) {
    held.length = 0;
    if (sourceError !== undefined) throw sourceError;
    if (refusal) return dropRest(refusal);
    return dropRest({ kind: 'store-failed', error, bytes });
  }
}
