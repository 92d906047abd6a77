/**
 * Argon2 hashes in the PHC string format, as OpenLDAP's pw-argon2 module
 * writes them after {ARGON2}: $argon2id$v=19$m=65536,t=2,p=1$SALT$HASH
 * (salt and hash in base 64 without padding). Computed with Node's built-in
 * crypto.argon2 (Node >= 24.7), compared in constant time. Only version 19
 * (0x13, the RFC 9106 one) is computed; absurd costs in a stored value (more
 * than 1 GiB of memory or 64 passes) are refused rather than run, so one bad
 * directory entry cannot stall the service.
 */
import { argon2 } from 'node:crypto';
import { sameSecret } from './constant-time.ts';
import type { CheckResult } from './crypt-hash.ts';

const PHC =
  /^\$(argon2id|argon2i|argon2d)\$(?:v=(\d+)\$)?m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;
const MAX_MEMORY_KIB = 1024 * 1024;
const MAX_PASSES = 64;

export function isArgon2(value: string): boolean {
  return value.startsWith('$argon2');
}

function derive(
  algorithm: 'argon2id' | 'argon2i' | 'argon2d',
  params: {
    message: string;
    nonce: Buffer;
    parallelism: number;
    tagLength: number;
    memory: number;
    passes: number;
  },
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    argon2(algorithm, params, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function argon2Matches(phc: string, candidate: string): Promise<CheckResult> {
  const m = PHC.exec(phc);
  if (!m) return 'unknown-scheme';
  const [, algorithm, version, memory, passes, parallelism, salt, hash] = m;
  if (version !== '19') return 'unknown-scheme';
  const expected = Buffer.from(hash!, 'base64');
  const nonce = Buffer.from(salt!, 'base64');
  const params = {
    message: candidate,
    nonce,
    parallelism: Number(parallelism),
    tagLength: expected.length,
    memory: Number(memory),
    passes: Number(passes),
  };
  if (
    params.memory > MAX_MEMORY_KIB ||
    params.passes > MAX_PASSES ||
    nonce.length < 8 ||
    expected.length < 4
  ) {
    return 'unknown-scheme';
  }
  const actual = await derive(algorithm as 'argon2id' | 'argon2i' | 'argon2d', params);
  return sameSecret(actual, expected) ? 'match' : 'mismatch';
}
