/**
 * Short content digests for identifiers: SHA-256 over a canonical JSON value,
 * truncated to 128 bits and written in Crockford base32 upper case (the queue
 * id alphabet), so the result is a valid NATS subject token and KV key
 * ([0-9A-Z] only: no dots, wildcards or spaces). 128 bits keeps ids short
 * (26 characters) while a collision stays out of reach even for addresses an
 * attacker chooses (a birthday search needs ~2^64 hashes).
 */
import { createHash } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** Bytes of the SHA-256 kept: 16 bytes = 128 bits = 26 base32 characters. */
const DIGEST_BYTES = 16;
export const CONTENT_HASH_LENGTH = Math.ceil((DIGEST_BYTES * 8) / 5);

/** Crockford base32 (upper case, no padding) of bytes, most significant bit first. */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let acc = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(acc << (5 - bits)) & 31];
  return out;
}

/** The 128-bit base32 digest of a JSON-serialisable value (callers canonicalise order first). */
export function contentHash(value: unknown): string {
  const digest = createHash('sha256').update(JSON.stringify(value), 'utf8').digest();
  return base32(digest.subarray(0, DIGEST_BYTES));
}
