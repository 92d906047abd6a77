/**
 * Verify a password against a stored value from the directory's password
 * attribute (RFC 3112 style "{SCHEME}value", the way OpenLDAP's userPassword
 * and Dovecot's password fields hold them): {CRYPT} (crypt-hash.ts),
 * {ARGON2} (argon2-hash.ts), the salted and plain digests (salted-digest.ts).
 * {PLAIN} / {CLEARTEXT} and values without a scheme are cleartext: refused
 * unless `allowCleartext` (a directory should never hold them). Anything else
 * is an unknown scheme: `checkPassword` says so (the authenticator warns once
 * per user), `verifyPassword` answers false.
 */

import { argon2Matches } from './argon2-hash.ts';
import { sameSecret } from './constant-time.ts';
import { type CheckResult, checkCrypt, cryptId } from './crypt-hash.ts';
import { checkDigest, isDigestScheme } from './salted-digest.ts';

export type { CheckResult } from './crypt-hash.ts';

export interface VerifyOptions {
  /** Accept {PLAIN}/{CLEARTEXT} and untagged values (compared in constant time). Default false. */
  allowCleartext?: boolean;
}

/** The "{SCHEME}" tag (upper case, no braces) and the value after it; no tag: scheme ''. */
export function splitScheme(stored: string): { scheme: string; value: string } {
  const m = /^\{([A-Za-z0-9.-]+)\}(.*)$/s.exec(stored);
  return m ? { scheme: m[1]!.toUpperCase(), value: m[2]! } : { scheme: '', value: stored };
}

/** A short name of the hash format for logs, metrics and the benchmark: "CRYPT-6", "SSHA", "ARGON2", ... */
export function hashFormat(stored: string): string {
  const { scheme, value } = splitScheme(stored);
  if (scheme === 'CRYPT') return `CRYPT-${cryptId(value)}`;
  return scheme || 'untagged';
}

export async function checkPassword(
  stored: string,
  candidate: string,
  opts: VerifyOptions = {},
): Promise<CheckResult> {
  const { scheme, value } = splitScheme(stored);
  if (scheme === 'CRYPT') return checkCrypt(value, candidate);
  if (scheme === 'ARGON2') return argon2Matches(value, candidate);
  if (isDigestScheme(scheme)) return checkDigest(scheme, value, candidate);
  if (scheme === 'PLAIN' || scheme === 'CLEARTEXT' || scheme === '') {
    if (!opts.allowCleartext) return 'unknown-scheme';
    return sameSecret(value, candidate) ? 'match' : 'mismatch';
  }
  return 'unknown-scheme';
}

/** Whether `candidate` is the password `storedHash` was made from; false for unknown schemes. */
export async function verifyPassword(
  storedHash: string,
  candidate: string,
  opts: VerifyOptions = {},
): Promise<boolean> {
  return (await checkPassword(storedHash, candidate, opts)) === 'match';
}
