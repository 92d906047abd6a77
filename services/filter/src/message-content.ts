/**
 * What the content rules and engines read of a message. A small (inline)
 * body is all there: `bytes` is the whole message. A large (object-store)
 * body is never held whole (decisions/0011): `bytes` is its header section
 * (up to HEADER_WINDOW), `complete` is false, and the engines stream the body
 * afresh with `open()`. Rules that need the whole body (MIME structure, links
 * for URIBLs, NUL and long lines below the headers) then see the header
 * section only (docs/filter.md).
 */
import type { Readable } from 'node:stream';
import type { BusClient } from '@sluice/bus';
import type { Envelope } from '@sluice/proto';
import { HEADER_WINDOW } from './message-source.ts';

export interface MessageContent {
  bytes: Uint8Array;
  /** Whether `bytes` is the whole message. */
  complete: boolean;
  /** The whole message as chunks (a fresh stream per call). */
  open(): Promise<AsyncIterable<Uint8Array>>;
}

export function inlineContent(body: Uint8Array): MessageContent {
  return {
    bytes: body,
    complete: true,
    open: async () =>
      (async function* () {
        yield body;
      })(),
  };
}

/** The header section of a large body, read from a stream of its own; the engines open another. */
export async function largeMessageContent(
  env: Envelope,
  bus: Pick<BusClient, 'openBody'>,
): Promise<MessageContent> {
  const stream: Readable = await bus.openBody(env);
  const read: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      read.push(chunk);
      bytes += chunk.length;
      const end = Buffer.concat(read).indexOf('\r\n\r\n');
      if (end >= 0 || bytes >= HEADER_WINDOW) break;
    }
  } finally {
    stream.destroy();
  }
  const all = Buffer.concat(read);
  const end = all.indexOf('\r\n\r\n');
  return {
    bytes: end >= 0 ? all.subarray(0, end + 4) : all.subarray(0, HEADER_WINDOW),
    complete: false,
    open: async () => (await bus.openBody(env)) as AsyncIterable<Uint8Array>,
  };
}
