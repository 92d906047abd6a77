/**
 * {CRYPT} values: a crypt(3) string after the scheme tag, as OpenLDAP and
 * Dovecot store them. Supported: $1$ (md5-crypt, md5-crypt.ts), $5$ / $6$
 * (Drepper's SHA-crypt, via the `unixcrypt` package: node:crypto hashes and
 * a constant-time compare), $2a$ / $2b$ / $2y$ (bcrypt, via `bcryptjs`) and
 * $argon2i$ / $argon2id$ (argon2-hash.ts). Traditional DES crypt and other
 * ids are unknown: the caller refuses them and warns.
 */
import bcrypt from 'bcryptjs';
import { verify as shaCryptVerify } from 'unixcrypt';
import { argon2Matches, isArgon2 } from './argon2-hash.ts';
import { sameSecret } from './constant-time.ts';
import { md5Crypt } from './md5-crypt.ts';

export type CheckResult = 'match' | 'mismatch' | 'unknown-scheme';

/** A bcrypt string: $2a$/$2b$/$2y$, two-digit cost, 53 characters of salt and digest. */
const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;
const SHA_CRYPT = /^\$[56]\$(rounds=\d+\$)?[^$]{0,16}\$[./A-Za-z0-9]+$/;
const MD5_CRYPT = /^\$1\$[^$]{0,8}\$[./A-Za-z0-9]{22}$/;

/** The crypt(3) id of a value ("1", "5", "6", "2y", "argon2id", ...), for logs and metrics. */
export function cryptId(crypted: string): string {
  const m = /^\$([A-Za-z0-9]+)\$/.exec(crypted);
  return m ? m[1]! : 'des';
}

/**
 * The highest costs computed: SHA-crypt rounds (default 5000; 1e6 is some 2 s
 * on the main thread) and bcrypt cost (15 is ~2 s in bcryptjs). A stored value
 * asking for more is refused like an unknown scheme, so one odd directory
 * entry cannot stall the service for minutes.
 */
export const MAX_SHA_CRYPT_ROUNDS = 1_000_000;
export const MAX_BCRYPT_COST = 15;

export async function checkCrypt(crypted: string, candidate: string): Promise<CheckResult> {
  if (MD5_CRYPT.test(crypted)) {
    return sameSecret(md5Crypt(candidate, crypted), crypted) ? 'match' : 'mismatch';
  }
  if (SHA_CRYPT.test(crypted)) {
    const rounds = /^\$[56]\$rounds=(\d+)\$/.exec(crypted);
    if (rounds && Number(rounds[1]) > MAX_SHA_CRYPT_ROUNDS) return 'unknown-scheme';
    return shaCryptVerify(candidate, crypted) ? 'match' : 'mismatch';
  }
  if (BCRYPT.test(crypted)) {
    if (Number(crypted.slice(4, 6)) > MAX_BCRYPT_COST) return 'unknown-scheme';
    return (await bcrypt.compare(candidate, crypted)) ? 'match' : 'mismatch';
  }
  if (isArgon2(crypted)) return argon2Matches(crypted, candidate);
  return 'unknown-scheme';
}
