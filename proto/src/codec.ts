/**
 * Wire format of an envelope on the bus: one NATS message carries the JSON
 * envelope and, when the body is inline, the raw body bytes after it.
 *
 *   "SLU1" | u32 big-endian length of the JSON | JSON (UTF-8) | body bytes
 *
 * Raw bytes, not base64-in-JSON: mail bodies are 8-bit data and the hot path
 * should not pay a 33% inflation and a re-encode at every stage. Decoding
 * validates the envelope and checks that an inline body has the size and
 * SHA-256 the envelope declares, so a corrupted or truncated message is
 * dead-lettered rather than delivered.
 */
import { createHash } from 'node:crypto';
import { type Envelope, EnvelopeValidationError, parseEnvelope } from './envelope.ts';
import { checkDecodedEnvelope } from './envelope-fast-check.ts';

const MAGIC = new Uint8Array([0x53, 0x4c, 0x55, 0x31]); // "SLU1"
const HEADER_BYTES = 8;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Encode an envelope and, if its body is inline, the body bytes. */
export function encodeEnvelope(env: Envelope, inlineBody?: Uint8Array): Uint8Array {
  if (env.body.kind === 'inline' && !inlineBody) {
    throw new EnvelopeValidationError('envelope declares an inline body but no body bytes were given');
  }
  if (env.body.kind === 'object' && inlineBody) {
    throw new EnvelopeValidationError('envelope declares an object-store body but body bytes were given');
  }
  const json = Buffer.from(JSON.stringify(env), 'utf8');
  const body = inlineBody ?? new Uint8Array(0);
  const out = Buffer.allocUnsafe(HEADER_BYTES + json.length + body.length);
  out.set(MAGIC, 0);
  out.writeUInt32BE(json.length, 4);
  json.copy(out, HEADER_BYTES);
  out.set(body, HEADER_BYTES + json.length);
  return out;
}

export interface DecodedEnvelope {
  envelope: Envelope;
  /** The inline body, when `envelope.body.kind === 'inline'`. */
  body?: Uint8Array;
}

/** Decode and validate; throws EnvelopeValidationError with a specific reason. */
export function decodeEnvelope(data: Uint8Array, opts: { verifyDigest?: boolean } = {}): DecodedEnvelope {
  if (data.length < HEADER_BYTES || !MAGIC.every((b, i) => data[i] === b)) {
    throw new EnvelopeValidationError('not a Sluice envelope (missing SLU1 magic)');
  }
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const jsonLen = buf.readUInt32BE(4);
  if (HEADER_BYTES + jsonLen > buf.length) {
    throw new EnvelopeValidationError(`truncated envelope: JSON length ${jsonLen} exceeds message`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString('utf8', HEADER_BYTES, HEADER_BYTES + jsonLen));
  } catch (err) {
    throw new EnvelopeValidationError(`envelope JSON does not parse: ${(err as Error).message}`);
  }
  // The common envelope is checked by hand; anything else (and every error) by the schema (decision 0039).
  const envelope = checkDecodedEnvelope(raw) ?? parseEnvelope(raw);
  const rest = buf.subarray(HEADER_BYTES + jsonLen);
  if (envelope.body.kind === 'object') {
    if (rest.length !== 0) throw new EnvelopeValidationError('object-store envelope carries inline bytes');
    return { envelope };
  }
  if (rest.length !== envelope.body.size) {
    throw new EnvelopeValidationError(
      `inline body is ${rest.length} bytes but the envelope declares ${envelope.body.size}`,
    );
  }
  if (opts.verifyDigest !== false && sha256Hex(rest) !== envelope.body.sha256) {
    throw new EnvelopeValidationError('inline body sha256 does not match the envelope');
  }
  return { envelope, body: rest };
}
