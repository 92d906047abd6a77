/**
 * The LDAP digest schemes: {SHA}, {SHA256}, {SHA384}, {SHA512} and {MD5}
 * (base 64 of the digest of the password), and their salted forms {SSHA},
 * {SSHA256}, {SSHA384}, {SSHA512}, {SMD5} (base 64 of digest(password ||
 * salt) || salt), as OpenLDAP's slappasswd and its contrib sha2 module write
 * them. The stored digest is compared with the computed one in constant time.
 */
import { createHash } from 'node:crypto';
import { sameSecret } from './constant-time.ts';
import type { CheckResult } from './crypt-hash.ts';

const DIGESTS: Record<string, { algorithm: string; length: number; salted: boolean }> = {
  SHA: { algorithm: 'sha1', length: 20, salted: false },
  SSHA: { algorithm: 'sha1', length: 20, salted: true },
  SHA256: { algorithm: 'sha256', length: 32, salted: false },
  SSHA256: { algorithm: 'sha256', length: 32, salted: true },
  SHA384: { algorithm: 'sha384', length: 48, salted: false },
  SSHA384: { algorithm: 'sha384', length: 48, salted: true },
  SHA512: { algorithm: 'sha512', length: 64, salted: false },
  SSHA512: { algorithm: 'sha512', length: 64, salted: true },
  MD5: { algorithm: 'md5', length: 16, salted: false },
  SMD5: { algorithm: 'md5', length: 16, salted: true },
};

export function isDigestScheme(scheme: string): boolean {
  return scheme in DIGESTS;
}

/** `scheme` is the tag without braces, upper case; `encoded` the base 64 after it. */
export function checkDigest(scheme: string, encoded: string, candidate: string): CheckResult {
  const d = DIGESTS[scheme];
  if (!d || !/^[A-Za-z0-9+/]+=*$/.test(encoded)) return 'unknown-scheme';
  const raw = Buffer.from(encoded, 'base64');
  if (d.salted ? raw.length <= d.length : raw.length !== d.length) return 'unknown-scheme';
  const stored = raw.subarray(0, d.length);
  const salt = raw.subarray(d.length);
  const actual = createHash(d.algorithm).update(candidate, 'utf8').update(salt).digest();
  return sameSecret(actual, stored) ? 'match' : 'mismatch';
}
