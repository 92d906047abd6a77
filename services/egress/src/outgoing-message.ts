/**
 * The message one delivery attempt sends, as something to open per
 * transaction rather than bytes in memory: the prepended headers (formatted
 * once, so a bad header fails before any connection) and the stored body,
 * streamed from the object store for large bodies (bus.openBody), so the
 * egress never holds a whole large message, whatever its concurrency.
 *
 * The body is opened once up front (a cheap existence check: the object
 * store read starts on the first chunk), so a missing body is a retry before
 * anyone is contacted; a part with more than 100 recipients needs several
 * transactions and opens the body again for each.
 *
 * Header fields the filter asked to drop (env.removeHeaders, e.g. forged
 * Authentication-Results) are left out as the body streams; SIZE= then
 * overstates by their length, which RFC 1870 allows (an estimate, §4).
 *
 * BODY=8BITMIME (RFC 6152) is declared when the headers or the body carry a
 * byte with the high bit set: for an inline body that is a native scan
 * (buffer.isAscii), for an object body the flag the ingress recorded while
 * the body streamed in (absent on older envelopes: declared, which is safe).
 */
import { isAscii } from 'node:buffer';
import type { Readable } from 'node:stream';
import type { BusClient } from '@sluice/bus';
import type { Envelope } from '@sluice/proto';
import { formatPrependHeaders, messageStream } from '@sluice/smtp';

export interface OutgoingMessage {
  /** Bytes before dot-stuffing, for SIZE= (RFC 1870). */
  readonly size: number;
  readonly eightBit: boolean;
  /** A fresh stream of the whole message (headers, then body) for one transaction. */
  open(): Promise<Readable>;
}

/** Rejects with HeaderAssemblyError (headers cannot be written) or BodyUnavailableError. */
export async function outgoingMessage(
  env: Envelope,
  inline: Uint8Array | undefined,
  bus: Pick<BusClient, 'openBody'>,
): Promise<OutgoingMessage> {
  const head = formatPrependHeaders(env.prepend);
  let opened: Readable | undefined = await bus.openBody(env, inline);
  const ref = env.body;
  const bodyEightBit = ref.kind === 'object' ? (ref.eightBit ?? true) : inline ? !isAscii(inline) : true;
  return {
    size: head.length + ref.size,
    eightBit: bodyEightBit || !isAscii(head),
    async open() {
      const body = opened ?? (await bus.openBody(env, inline));
      opened = undefined;
      return messageStream(head, body, env.removeHeaders);
    },
  };
}

/**
 * The start of a message stream, then the stream is destroyed: up to `limit`
 * bytes (a chunk may overshoot), or with `untilHeaderEnd` no further than the
 * chunk holding the blank line that ends the header block.
 */
export async function readMessageStart(
  stream: Readable,
  limit: number,
  untilHeaderEnd: boolean,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      chunks.push(b);
      size += b.length;
      if (size >= limit) break;
      if (untilHeaderEnd && (b.includes('\r\n\r\n') || b.includes('\n\n'))) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}
