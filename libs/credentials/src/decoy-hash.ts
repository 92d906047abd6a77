/**
 * The hash an unknown login is verified against, so that "no such user"
 * costs what "wrong password" costs and the answer time does not tell them
 * apart: a copy of a stored hash of the snapshot's most common format with
 * one digest character changed, which keeps the format's cost parameters
 * (rounds, bcrypt cost, argon2 memory) and can match no password in practice.
 * With no users, a salted SHA-1 of random bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { DirectoryUser } from './ldap-users.ts';
import { hashFormat } from './verify-password.ts';

const EMPTY_DECOY = (() => {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(randomBytes(32)).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
})();

/** `hash` with its last digest character (before base-64 padding) changed. */
export function alteredHash(hash: string): string {
  const m = /[A-Za-z0-9./+](?==*$)/.exec(hash);
  if (!m) return EMPTY_DECOY;
  const c = m[0] === 'A' ? 'B' : 'A';
  return hash.slice(0, m.index) + c + hash.slice(m.index + 1);
}

export function decoyHash(users: Iterable<DirectoryUser>): string {
  const byFormat = new Map<string, { count: number; sample: string }>();
  for (const u of users) {
    const h = u.hashes[0];
    if (!h) continue;
    const f = hashFormat(h);
    const seen = byFormat.get(f);
    if (seen) seen.count++;
    else byFormat.set(f, { count: 1, sample: h });
  }
  let best: { count: number; sample: string } | undefined;
  for (const v of byFormat.values()) if (!best || v.count > best.count) best = v;
  return best ? alteredHash(best.sample) : EMPTY_DECOY;
}
