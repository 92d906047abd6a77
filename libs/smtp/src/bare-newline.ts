/**
 * Bare line ends in message data: a LF not preceded by CR, or a CR not
 * followed by LF. RFC 5321 §2.3.8 says lines end in CRLF and that a receiver
 * must not treat a bare CR or LF as a line end; servers that do anyway are
 * what SMTP smuggling exploits (CVE-2023-51764/5/6: "\n.\n" ends DATA at one
 * hop but not the other, and a second, forged message rides along). The
 * ingress refuses such messages (Postfix smtpd_forbid_bare_newline) and the
 * egress must never forward one, so no downstream server can see a second
 * message.
 *
 * The scanner works on a stream of chunks, carrying one bit between them
 * (the previous chunk ended in CR), so a CRLF split across two chunks is not
 * mistaken for a bare CR and a LF. It jumps from line end to line end with
 * Buffer#indexOf (native memchr) instead of looking at every byte in
 * JavaScript: a 30 MB body costs a few milliseconds of event loop, not
 * hundreds.
 */

export type BareNewline = { kind: 'LF' | 'CR'; offset: number };

const CR = 0x0d;
const LF = 0x0a;

export class BareNewlineScanner {
  #offset = 0;
  #pendingCr = false;
  #found: BareNewline | undefined;

  /** The first bare line end seen so far, if any. */
  get found(): BareNewline | undefined {
    return this.#found;
  }

  /** Scan the next chunk; returns the first bare line end (once found, it stays found). */
  push(chunk: Uint8Array): BareNewline | undefined {
    if (!this.#found && chunk.length > 0) this.#found = this.#scan(chunk);
    this.#offset += chunk.length;
    return this.#found;
  }

  #scan(chunk: Uint8Array): BareNewline | undefined {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const at = (i: number) => this.#offset + i;
    let i = 0;
    if (this.#pendingCr) {
      this.#pendingCr = false;
      if (buf[0] !== LF) return { kind: 'CR', offset: at(-1) };
      i = 1;
    }
    // Every CR must be followed by LF and every LF preceded by CR: walk the CRs and LFs in order.
    let nextCr = buf.indexOf(CR, i);
    let nextLf = buf.indexOf(LF, i);
    while (nextCr !== -1 || nextLf !== -1) {
      if (nextLf !== -1 && (nextCr === -1 || nextLf < nextCr)) return { kind: 'LF', offset: at(nextLf) };
      // nextCr comes first
      if (nextCr === buf.length - 1) {
        this.#pendingCr = true;
        return undefined;
      }
      if (nextLf !== nextCr + 1) return { kind: 'CR', offset: at(nextCr) };
      nextCr = buf.indexOf(CR, nextLf + 1);
      nextLf = buf.indexOf(LF, nextLf + 1);
    }
    return undefined;
  }

  /** Call at the end of the data: a trailing CR is bare. */
  end(): BareNewline | undefined {
    if (!this.#found && this.#pendingCr) this.#found = { kind: 'CR', offset: this.#offset - 1 };
    this.#pendingCr = false;
    return this.#found;
  }
}

/** The first bare CR or LF in a complete buffer, or undefined if every line ends in CRLF. */
export function findBareNewline(data: Uint8Array): BareNewline | undefined {
  const s = new BareNewlineScanner();
  return s.push(data) ?? s.end();
}
