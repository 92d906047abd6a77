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
 * The scanner works on a stream of chunks, keeping only the last byte, so a
 * CRLF split across two chunks is not mistaken for a bare CR and a LF.
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
    if (this.#found) {
      this.#offset += chunk.length;
      return this.#found;
    }
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.#pendingCr) {
        this.#pendingCr = false;
        if (b !== LF) {
          this.#found = { kind: 'CR', offset: this.#offset + i - 1 };
          break;
        }
        continue;
      }
      if (b === CR) this.#pendingCr = true;
      else if (b === LF) {
        this.#found = { kind: 'LF', offset: this.#offset + i };
        break;
      }
    }
    this.#offset += chunk.length;
    return this.#found;
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
