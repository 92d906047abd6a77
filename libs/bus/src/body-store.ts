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
 */
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
