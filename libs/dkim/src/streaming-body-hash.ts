/**
 * The DKIM body hash (bh=, relaxed, RFC 6376 §3.4.4 and §3.7) of a body that
 * comes in chunks, for bodies too large to hold (the object store's streams):
 * the same result as bodyHash (canonical.ts) over the whole body, in memory
 * bounded by the longest line rather than the body.
 *
 * What needs care at chunk boundaries:
 *   - a CRLF split between two chunks ("...\r" | "\n..."): lines are cut on
 *     CRLF only in the pending text plus the new chunk, so the CR stays with
 *     the unfinished line until its LF arrives;
 *   - whitespace at a chunk's end may be inside a line or at its end: a line
 *     is canonicalized only once it is complete (WSP runs to one SP, none at
 *     the end);
 *   - empty lines: they are held as a count and written only when a
 *     non-empty line follows, because §3.4.4 drops the empty lines at the end
 *     of the body, and whether these are at the end is known only then.
 *
 * streamedMessageParts does the same over a whole stored message (header
 * block, blank line, body), as splitMessage does for a buffer: the header
 * block is kept (it is small; the signer needs its fields), the body only
 * hashed.
 */
import { createHash, type Hash } from 'node:crypto';

function relaxedLine(line: string): string {
  return line.replace(/[ \t]+/g, ' ').replace(/ $/, '');
}

export class RelaxedBodyHash {
  readonly #hash: Hash = createHash('sha256');
  #pending = '';
  #emptyLines = 0;
  #done = false;

  update(chunk: Uint8Array): this {
    if (this.#done) throw new Error('RelaxedBodyHash: update after digest');
    const text =
      this.#pending + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
    const lines = text.split('\r\n');
    this.#pending = lines.pop()!;
    for (const line of lines) this.#line(relaxedLine(line));
    return this;
  }

  /** bh= (base64 SHA-256 of the canonical body). */
  digest(): string {
    if (!this.#done) {
      this.#done = true;
      // The last line without a CRLF is a line too (one-shot relaxedBody does the same).
      const last = relaxedLine(this.#pending);
      if (last !== '') this.#line(last);
    }
    return this.#hash.digest('base64');
  }

  #line(canonical: string) {
    if (canonical === '') {
      this.#emptyLines++;
      return;
    }
    if (this.#emptyLines > 0) this.#hash.update('\r\n'.repeat(this.#emptyLines), 'latin1');
    this.#emptyLines = 0;
    this.#hash.update(`${canonical}\r\n`, 'latin1');
  }
}

/** The relaxed body hash of a body given as chunks. */
export async function streamedBodyHash(chunks: AsyncIterable<Uint8Array>): Promise<string> {
  const h = new RelaxedBodyHash();
  for await (const c of chunks) h.update(c);
  return h.digest();
}

/**
 * A whole message as chunks: its header block (the bytes before the first
 * blank line, as splitMessage cuts them) and the relaxed hash of its body.
 */
export async function streamedMessageParts(
  chunks: AsyncIterable<Uint8Array>,
): Promise<{ head: Buffer; bodyHash: string }> {
  const h = new RelaxedBodyHash();
  let head: Buffer | undefined = Buffer.alloc(0);
  let headBytes: Buffer = Buffer.alloc(0);
  for await (const c of chunks) {
    if (head === undefined) {
      h.update(c);
      continue;
    }
    const from = Math.max(0, head.length - 3);
    head = Buffer.concat([head, c]);
    // RFC 5322 §2.1: the header block ends at the first empty line; a message may start with it.
    const end = head.subarray(0, 2).toString('latin1') === '\r\n' ? -2 : head.indexOf('\r\n\r\n', from);
    if (end === -2) {
      headBytes = Buffer.alloc(0);
      h.update(head.subarray(2));
      head = undefined;
    } else if (end >= 0) {
      headBytes = head.subarray(0, end);
      h.update(head.subarray(end + 4));
      head = undefined;
    }
  }
  // No blank line: all header, empty body.
  if (head !== undefined) headBytes = head;
  return { head: headBytes, bodyHash: h.digest() };
}
