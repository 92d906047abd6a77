/**
 * Where a message body lives: inline in the envelope's NATS message when it is
 * small, or in the JetStream object store under the queue id (claim check)
 * when it is not, so NATS' max_payload never limits message size and large
 * bodies do not pass through every stage. The threshold is inlineMaxBytes,
 * capped at max_payload minus 64 KiB for the envelope JSON and headers.
 * Measured: an object get costs ~9 ms (it opens an ordered consumer) against
 * ~0.4 ms for a stream publish, so typical mail travels inline (see
 * docs/decisions/0002). We compute the SHA-256 ourselves and check size and
 * digest on every read: a body that does not match its envelope is an error,
 * never silently delivered.
 *
 * Large bodies are streamed both ways (docs/decisions/0011): storeBodyStream
 * puts chunks as they come (128 KiB object chunks, one publish at a time, so
 * the source is read no faster than JetStream takes it) and openBody reads
 * them back through an ordered pull consumer a few chunks at a time, so
 * neither side ever holds a whole large body. Size and sha256 are computed
 * on the way in and checked on the way out (the stream fails at the end on a
 * mismatch, so a consumer that sends it on must not finish what it sent).
 */

import { isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import { type BodyRef, type Envelope, objectStores, sha256Hex } from '@sluice/proto';
import type { StoredBody } from './types.ts';

/** Room left in a NATS message for the envelope JSON and headers next to an inline body. */
export const PAYLOAD_HEADROOM_BYTES = 64 * 1024;

/** The largest body that travels inline. */
export function inlineLimit(inlineMaxBytes: number, maxPayload: number): number {
  return Math.max(0, Math.min(inlineMaxBytes, maxPayload - PAYLOAD_HEADROOM_BYTES));
}

/** The body is missing from the object store (expired, deleted) or does not match its reference. */
export class BodyUnavailableError extends Error {
  override name = 'BodyUnavailableError';
}

/** Opens the body store on first use; inline bodies never touch it. */
export type BodyStoreOpener = () => Promise<ObjectStore>;

export async function storeBody(
  openStore: BodyStoreOpener,
  queueId: string,
  body: Uint8Array,
  limit: number,
  timeoutMs: number,
): Promise<StoredBody> {
  const sha256 = sha256Hex(body);
  if (body.length <= limit) {
    return { ref: { kind: 'inline', size: body.length, sha256 }, inline: body };
  }
  const store = await openStore();
  const info = await store.putBlob({ name: queueId }, body, { timeout: timeoutMs });
  if (info.size !== body.length) {
    throw new BodyUnavailableError(`object store kept ${info.size} of ${body.length} bytes for ${queueId}`);
  }
  return { ref: { kind: 'object', bucket: objectStores.bodies, key: queueId, size: body.length, sha256 } };
}

/**
 * Put a large body into the object store from a stream of chunks, computing
 * size, sha256 and whether any byte has the high bit set on the way. If
 * `chunks` throws (the ingress refuses the body half way: size, bare line
 * end, budget) or the store fails, the put is abandoned: the client library
 * purges the chunks already written and no object entry is ever created, so
 * nothing is left behind. The error of `chunks` is rethrown as is.
 */
export async function storeBodyStream(
  openStore: BodyStoreOpener,
  queueId: string,
  chunks: AsyncIterable<Uint8Array>,
  timeoutMs: number,
): Promise<StoredBody> {
  const hash = createHash('sha256');
  let size = 0;
  let eightBit = false;
  async function* measured(): AsyncGenerator<Uint8Array> {
    for await (const chunk of chunks) {
      hash.update(chunk);
      size += chunk.length;
      if (!eightBit && !isAscii(chunk)) eightBit = true;
      yield chunk;
    }
  }
  const store = await openStore();
  const info = await store.put(
    { name: queueId, options: { max_chunk_size: OBJECT_CHUNK_BYTES } },
    ReadableStream.from(measured()),
    { timeout: timeoutMs },
  );
  if (info.size !== size) {
    throw new BodyUnavailableError(`object store kept ${info.size} of ${size} bytes for ${queueId}`);
  }
  return {
    ref: {
      kind: 'object',
      bucket: objectStores.bodies,
      key: queueId,
      size,
      sha256: hash.digest('hex'),
      eightBit,
    },
  };
}

/** The object store's chunk size for streamed bodies (one JetStream message per chunk). */
export const OBJECT_CHUNK_BYTES = 128 * 1024;

/**
 * What the object-store client holds of a body while it streams in: the chunk it fills and the
 * chunk it publishes. The ingress counts it against its body budget for each streaming body.
 */
export const STREAM_BUFFER_BYTES = 2 * OBJECT_CHUNK_BYTES;

/** Object chunks fetched ahead of the reader: memory per open body is about this many chunks. */
const CHUNKS_AHEAD = 2;

/**
 * The body of an envelope as a stream, without holding it whole: inline bytes
 * as one chunk; an object-store body read through an ordered pull consumer
 * (created on the first read, so opening is a cheap existence check) a few
 * chunks ahead of the reader. The stream fails with BodyUnavailableError if
 * the object is missing, shorter or longer than the envelope says, or its
 * sha256 differs (checked when the last byte arrives, before the end).
 */
export async function openBody(
  openStore: BodyStoreOpener,
  js: JetStreamClient,
  env: Envelope,
  inline?: Uint8Array,
): Promise<Readable> {
  const ref = env.body;
  if (ref.kind === 'inline') return Readable.from([await loadBody(openStore, env, inline)]);
  if (ref.bucket !== objectStores.bodies) {
    throw new BodyUnavailableError(`envelope ${env.id} points at unknown object store "${ref.bucket}"`);
  }
  const info = await (await openStore()).info(ref.key);
  if (info === null || info.deleted) {
    throw new BodyUnavailableError(
      `body ${ref.key} of ${env.id} is not in the object store (expired or deleted)`,
    );
  }
  if (info.size !== ref.size) {
    throw new BodyUnavailableError(
      `body ${ref.key} is ${info.size} bytes, envelope ${env.id} says ${ref.size}`,
    );
  }
  if (ref.size === 0) return Readable.from([]);
  // The object store's own layout (NATS ADR-20): stream OBJ_<bucket>, chunks on $O.<bucket>.C.<nuid>.
  const streamName = `OBJ_${ref.bucket}`;
  const chunkSubject = `$O.${ref.bucket}.C.${info.nuid}`;
  const hash = createHash('sha256');
  let got = 0;
  let messages: ConsumerMessages | undefined;
  let next: AsyncIterator<JsMsg> | undefined;
  const fail = (why: string) => new BodyUnavailableError(`body ${ref.key} of ${env.id} ${why}`);
  return new Readable({
    highWaterMark: 128 * 1024,
    read() {
      (async () => {
        if (!next) {
          const consumer = await js.consumers.get(streamName, { filter_subjects: chunkSubject });
          messages = await consumer.consume({ max_messages: CHUNKS_AHEAD });
          next = messages[Symbol.asyncIterator]();
        }
        const r = await next.next();
        if (r.done) throw fail(`ended after ${got} of ${ref.size} bytes`);
        const data = r.value.data;
        got += data.length;
        hash.update(data);
        if (got > ref.size) throw fail(`is longer than the ${ref.size} bytes the envelope says`);
        if (got < ref.size) {
          if (r.value.info.pending === 0) throw fail(`ended after ${got} of ${ref.size} bytes`);
          this.push(data);
          return;
        }
        if (hash.digest('hex') !== ref.sha256) throw fail('does not match the sha256 in the envelope');
        messages?.stop();
        this.push(data);
        this.push(null);
      })().catch((err: unknown) => this.destroy(err as Error));
    },
    destroy(err, callback) {
      messages?.stop();
      callback(err);
    },
  });
}

export async function loadBody(
  openStore: BodyStoreOpener,
  env: Envelope,
  inline?: Uint8Array,
): Promise<Uint8Array> {
  const ref = env.body;
  if (ref.kind === 'inline') {
    if (!inline)
      throw new BodyUnavailableError(`envelope ${env.id} has an inline body but no bytes were given`);
    if (inline.length !== ref.size) {
      throw new BodyUnavailableError(
        `inline body of ${env.id} is ${inline.length} bytes, envelope says ${ref.size}`,
      );
    }
    return inline;
  }
  if (ref.bucket !== objectStores.bodies) {
    throw new BodyUnavailableError(`envelope ${env.id} points at unknown object store "${ref.bucket}"`);
  }
  const bytes = await (await openStore()).getBlob(ref.key);
  if (bytes === null) {
    throw new BodyUnavailableError(
      `body ${ref.key} of ${env.id} is not in the object store (expired or deleted)`,
    );
  }
  if (bytes.length !== ref.size) {
    throw new BodyUnavailableError(
      `body ${ref.key} is ${bytes.length} bytes, envelope ${env.id} says ${ref.size}`,
    );
  }
  if (sha256Hex(bytes) !== ref.sha256) {
    throw new BodyUnavailableError(`body ${ref.key} does not match the sha256 in envelope ${env.id}`);
  }
  return bytes;
}

/** Remove an object-store body; inline bodies and already-deleted objects are a no-op. */
export async function deleteBody(openStore: BodyStoreOpener, ref: BodyRef): Promise<void> {
  if (ref.kind !== 'object') return;
  const store = await openStore();
  const info = await store.info(ref.key);
  if (info === null || info.deleted) return;
  await store.delete(ref.key);
}
