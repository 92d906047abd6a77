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
 * A body that does not begin with a header field (no header section, or a
 * broken one: RFC 5322 §2.2 field-name ":") gets an empty line after the
 * prepended headers, so our Received is never glued to the body's first line
 * and that line is never read as a header (issue 10). A body beginning with
 * CRLF already has its empty header section and is left alone.
 *
 * messageStream does the same for a body that is a stream (a large body read
 * from the object store), so the egress never holds a whole large message:
 * the headers, then the body's chunks as they come, never concatenated
 * (with the same empty line, decided on the body's first line).
 */
import { Readable } from 'node:stream';
import type { HeaderRemoval, PrependHeader } from '@sluice/proto';
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

/** RFC 5322 §2.2 / §4.5 (obs: WSP before the colon): printable ASCII but ":", then ":". */
const HEADER_START = /^[\x21-\x39\x3b-\x7e]+[ \t]*:/;

/** Whether the body needs an empty line before it: it starts neither with a header field nor with CRLF. */
export function needsHeaderSeparation(body: Uint8Array): boolean {
  if (body.length === 0) return false;
  if (body[0] === 0x0d && body[1] === 0x0a) return false;
  const start = Buffer.from(body.buffer, body.byteOffset, Math.min(body.length, 1000)).toString('latin1');
  return !HEADER_START.test(start);
}

/**
 * The full message: prepended headers (top first), an empty line if the body
 * has no header section, then the body — unchanged except for the header
 * fields `remove` names (envelope removeHeaders: e.g. forged
 * Authentication-Results, RFC 8601 §5), which are left out. The stored body
 * itself is never modified.
 */
export function assembleMessage(
  prepend: readonly Pick<PrependHeader, 'name' | 'value'>[],
  body: Uint8Array,
  remove: readonly Pick<HeaderRemoval, 'name' | 'index'>[] = [],
): Buffer {
  const head = formatPrependHeaders(prepend);
  const rest = remove.length > 0 ? withoutHeaderFields(body, remove) : body;
  const parts = needsHeaderSeparation(rest) && head.length > 0 ? [head, CRLF, rest] : [head, rest];
  return Buffer.concat(parts);
}

const CRLF = Buffer.from('\r\n');

/**
 * The body with the named header fields left out. A field is its first line
 * and the folded lines after it (RFC 5322 §2.2.3); the header block ends at
 * the first empty line (§2.1). Only the header block is touched.
 */
export function withoutHeaderFields(
  body: Uint8Array,
  remove: readonly Pick<HeaderRemoval, 'name' | 'index'>[],
): Uint8Array {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const end = headerBlockEnd(buf);
  const drop = new Set(remove.map((r) => `${r.name.toLowerCase()}\0${r.index}`));
  const seen = new Map<string, number>();
  const kept: Buffer[] = [];
  let pos = 0;
  while (pos < end) {
    // One field: up to a CRLF not followed by whitespace (a fold), or the block end.
    let next = pos;
    for (;;) {
      const lf = buf.indexOf(0x0a, next);
      if (lf < 0 || lf + 1 >= end) {
        next = end;
        break;
      }
      next = lf + 1;
      if (buf[next] !== 0x20 && buf[next] !== 0x09) break;
    }
    const colon = buf.indexOf(0x3a, pos);
    const name = colon > pos && colon < next ? buf.toString('latin1', pos, colon).trim().toLowerCase() : '';
    const n = seen.get(name) ?? 0;
    seen.set(name, n + 1);
    if (!(name && drop.has(`${name}\0${n}`))) kept.push(buf.subarray(pos, next));
    pos = next;
  }
  kept.push(buf.subarray(end));
  return Buffer.concat(kept);
}

/** Offset just past the header block's last field (the empty line stays with the body). */
function headerBlockEnd(buf: Buffer): number {
  if (buf[0] === 0x0d && buf[1] === 0x0a) return 0;
  const i = buf.indexOf('\r\n\r\n');
  return i < 0 ? buf.length : i + 2;
}

/**
 * The full message as a stream: the formatted prepended headers, then the
 * body's chunks unchanged — except for the header fields `remove` names
 * (envelope removeHeaders), left out of the body's header block, which is
 * gathered first (at most MAX_FILTERED_HEADER_BLOCK; a longer one is passed
 * through untouched) — with the same empty line as assembleMessage, decided
 * on the body's first line.
 */
export function messageStream(
  head: Uint8Array,
  body: Readable,
  remove: readonly Pick<HeaderRemoval, 'name' | 'index'>[] = [],
): Readable {
  async function* chunks(): AsyncGenerator<Uint8Array> {
    const source: AsyncIterable<Uint8Array> =
      remove.length === 0
        ? (body as AsyncIterable<Uint8Array>)
        : withoutHeaderFieldsStreamed(body as AsyncIterable<Uint8Array>, remove);
    if (head.length === 0) {
      yield* source;
      return;
    }
    yield head;
    // Hold the body's start until its first line is seen (or 1000 octets): header or not.
    const held: Buffer[] = [];
    let heldBytes = 0;
    let decided = false;
    for await (const chunk of source) {
      if (decided) {
        yield chunk;
        continue;
      }
      const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      held.push(b);
      heldBytes += b.length;
      if (heldBytes < 1000 && !b.includes(0x0a)) continue;
      decided = true;
      const start = Buffer.concat(held);
      if (needsHeaderSeparation(start)) yield CRLF;
      yield start;
    }
    if (!decided && heldBytes > 0) {
      const start = Buffer.concat(held);
      if (needsHeaderSeparation(start)) yield CRLF;
      yield start;
    }
  }
  const out = Readable.from(chunks(), { objectMode: false });
  // Whoever stops reading (a refused transaction) releases the body too.
  out.once('close', () => body.destroy());
  return out;
}

/** The largest body header block messageStream filters (larger: passed through unchanged). */
export const MAX_FILTERED_HEADER_BLOCK = 1024 * 1024;

async function* withoutHeaderFieldsStreamed(
  body: AsyncIterable<Uint8Array>,
  remove: readonly Pick<HeaderRemoval, 'name' | 'index'>[],
): AsyncGenerator<Uint8Array> {
  let held: Buffer | null = Buffer.alloc(0);
  for await (const chunk of body) {
    if (held === null) {
      yield chunk;
      continue;
    }
    held = Buffer.concat([held, chunk]);
    const complete = (held[0] === 0x0d && held[1] === 0x0a) || held.indexOf('\r\n\r\n') >= 0;
    if (complete) {
      yield withoutHeaderFields(held, remove);
      held = null;
    } else if (held.length > MAX_FILTERED_HEADER_BLOCK) {
      yield held;
      held = null;
    }
  }
  if (held !== null && held.length > 0) yield withoutHeaderFields(held, remove);
}
