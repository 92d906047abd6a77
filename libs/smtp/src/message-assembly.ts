/**
 * Assemble the message as it leaves Sluice: the headers stages asked to
 * prepend (Received, Authentication-Results, later DKIM-Signature and ARC-*),
 * top first, then the stored body exactly as received. The body is immutable
 * (DESIGN: stages add, none rewrites), so DKIM signatures over it stay valid.
 *
 * Each header is written as "Name: value" CRLF (RFC 5322 §2.2). A value may be
 * folded (CRLF followed by a space or tab, §2.2.3); any other CR or LF, or a
 * NUL, would let a value start a new header or end the header block, so it is
 * refused here as a last line of defence: stages build headers with
 * headerField (header-field.ts), which refuses them where they are made, and
 * the envelope schema refuses bare CR/LF too.
 *
 * messageStream does the same for a body that is a stream (a large body read
 * from the object store), so the egress never holds a whole large message:
 * the headers, then the body's chunks as they come, never concatenated.
 */
import { Readable } from 'node:stream';
import type { PrependHeader } from '@sluice/proto';
import { headerFieldProblem } from './header-field.ts';

export class HeaderAssemblyError extends Error {
  override name = 'HeaderAssemblyError';
}

/** The bytes of the prepended headers: "Name: value\r\n" each, in order. */
export function formatPrependHeaders(prepend: readonly Pick<PrependHeader, 'name' | 'value'>[]): Buffer {
  let text = '';
  for (const h of prepend) {
    const problem = headerFieldProblem(h.name, h.value);
    if (problem) throw new HeaderAssemblyError(problem);
    text += `${h.name}: ${h.value}\r\n`;
  }
  return Buffer.from(text, 'utf8');
}

/** The full message: prepended headers (top first), then the body unchanged. */
export function assembleMessage(
  prepend: readonly Pick<PrependHeader, 'name' | 'value'>[],
  body: Uint8Array,
): Buffer {
  const head = formatPrependHeaders(prepend);
  return Buffer.concat([head, body], head.length + body.length);
}

/** The full message as a stream: the formatted prepended headers, then the body's chunks unchanged. */
export function messageStream(head: Uint8Array, body: Readable): Readable {
  async function* chunks(): AsyncGenerator<Uint8Array> {
    if (head.length > 0) yield head;
    yield* body as AsyncIterable<Uint8Array>;
  }
  const out = Readable.from(chunks(), { objectMode: false });
  // Whoever stops reading (a refused transaction) releases the body too.
  out.once('close', () => body.destroy());
  return out;
}
