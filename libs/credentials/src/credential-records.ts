/**
 * What buckets.credentials holds, and how: one key per user
 * ("u.<base64url of the lower-case uid>", KV-safe whatever the uid) whose
 * value is the user's id, login names and password HASHES as JSON, and one
 * meta key (credentialsMetaKey) saying which refresh wrote the snapshot and
 * how many users it had. Never a password: the values are what the
 * directory holds, and the directory holds hashes.
 */
import { credentialsMetaKey } from '@sluice/proto';
import type { DirectoryUser } from './ldap-users.ts';

export interface SnapshotMeta {
  v: 1;
  /** Incremented by every refresh that changed the snapshot. */
  version: number;
  /** When LDAP was last read successfully (ms epoch), changed or not. */
  fetchedAt: number;
  users: number;
  server: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const USER_KEY_PREFIX = 'u.';

export function userKey(uid: string): string {
  return `${USER_KEY_PREFIX}${Buffer.from(uid.toLowerCase(), 'utf8').toString('base64url')}`;
}

export function isMetaKey(key: string): boolean {
  return key === credentialsMetaKey;
}

export function encodeUser(u: DirectoryUser): Uint8Array {
  return encoder.encode(JSON.stringify({ v: 1, uid: u.uid, hashes: u.hashes, logins: u.logins }));
}

export function decodeUser(value: Uint8Array): DirectoryUser | null {
  try {
    const o = JSON.parse(decoder.decode(value)) as Partial<DirectoryUser> & { v?: number };
    if (o.v !== 1 || typeof o.uid !== 'string' || !Array.isArray(o.hashes)) return null;
    return { uid: o.uid, hashes: o.hashes.map(String), logins: (o.logins ?? []).map(String) };
  } catch {
    return null;
  }
}

export function encodeMeta(m: SnapshotMeta): Uint8Array {
  return encoder.encode(JSON.stringify(m));
}

export function decodeMeta(value: Uint8Array): SnapshotMeta | null {
  try {
    const o = JSON.parse(decoder.decode(value)) as SnapshotMeta;
    return o.v === 1 && typeof o.version === 'number' ? o : null;
  } catch {
    return null;
  }
}

/** Whether two users would be stored the same (nothing to write). */
export function sameUser(a: DirectoryUser, b: DirectoryUser): boolean {
  return JSON.stringify([a.uid, a.hashes, a.logins]) === JSON.stringify([b.uid, b.hashes, b.logins]);
}
