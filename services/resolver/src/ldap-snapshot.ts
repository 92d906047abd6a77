/**
 * The LDAP snapshot: what the resolver last accepted from the directory, as
 * stored in buckets.ldapSnapshot (gzip'd JSON, so a 10,000-entry directory
 * stays far below NATS' max_payload). `version` changes when the entries
 * change; `fetchedAt` is the last time LDAP confirmed them (an unchanged
 * refresh moves it and keeps the version), so the age measures how long the
 * snapshot has gone unconfirmed — what routing.ldap.maxStaleness bounds.
 */
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { RefusedForward } from './ldap-directory.ts';

export interface LdapSnapshot {
  v: 1;
  version: number;
  /** When LDAP last confirmed these entries, ms since the epoch. */
  fetchedAt: number;
  /** The URL that answered. */
  server: string;
  contentHash: string;
  /** Lower-case uid -> checked forward targets. */
  entries: Record<string, string[]>;
  refused: RefusedForward[];
}

export function encodeSnapshot(s: LdapSnapshot): Uint8Array {
  return gzipSync(JSON.stringify(s));
}

export function decodeSnapshot(bytes: Uint8Array): LdapSnapshot {
  const s = JSON.parse(gunzipSync(bytes).toString('utf8')) as LdapSnapshot;
  const ok =
    s?.v === 1 &&
    Number.isInteger(s.version) &&
    typeof s.fetchedAt === 'number' &&
    s.entries !== null &&
    typeof s.entries === 'object' &&
    Object.values(s.entries).every((t) => Array.isArray(t) && t.every((a) => typeof a === 'string'));
  if (!ok) throw new Error('LDAP snapshot in the bucket is not a version-1 snapshot');
  return { ...s, refused: Array.isArray(s.refused) ? s.refused : [] };
}

/** A hash of the entries, independent of the order LDAP returned them in. */
export function entriesHash(entries: Record<string, string[]>): string {
  const h = createHash('sha256');
  for (const uid of Object.keys(entries).sort()) h.update(`${uid}\0${entries[uid]!.join('\0')}\n`);
  return h.digest('hex');
}

/** The share (0..1) of `before`'s entries that `after` no longer has. */
export function deletionShare(before: Record<string, unknown>, after: Record<string, unknown>): number {
  const keys = Object.keys(before);
  if (keys.length === 0) return 0;
  let gone = 0;
  for (const k of keys) if (!(k in after)) gone++;
  return gone / keys.length;
}
