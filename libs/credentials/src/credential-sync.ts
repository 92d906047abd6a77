/**
 * Refresh buckets.credentials from LDAP. One replica writes per refresh: it
 * first advances the meta record with compare-and-set on the revision it
 * read, so a replica that loses the race leaves the writing to the winner
 * (whose read is as fresh). Then it writes only what changed: users whose
 * hashes or logins differ are put, users gone from the directory are
 * deleted (so a removed user cannot log in after the next refresh).
 *
 * Deletion guard (as the routing snapshot, decision 0014): a read that would
 * remove more than ldap.maxDeleteShare of the stored users (LDAP answering
 * empty, a wrong filter, a half-restored directory) is held back and logged;
 * the snapshot in use keeps serving until `force`.
 */
import type { KV } from '@nats-io/kv';
import type { Logger } from '@sluice/log';
import { credentialsMetaKey } from '@sluice/proto';
import type { AuthMetrics } from '@sluice/telemetry';
import type { CredentialCache } from './credential-cache.ts';
import {
  decodeMeta,
  encodeMeta,
  encodeUser,
  type SnapshotMeta,
  sameUser,
  userKey,
} from './credential-records.ts';
import { readUsers, type UserQuery, type UserRead } from './ldap-users.ts';
import type { LdapConnection, RefreshOutcome } from './types.ts';

export interface SyncDeps {
  kv: KV;
  cache: CredentialCache;
  log: Logger;
  metrics: AuthMetrics;
  ldap: LdapConnection;
  query: UserQuery;
  now: () => number;
  read?: typeof readUsers;
}

/** KV writes in flight at once during a refresh. */
const WRITE_BATCH = 64;

function isConflict(err: unknown): boolean {
  return /wrong last sequence|10071|key exists/i.test((err as Error)?.message ?? '');
}

export async function refreshCredentials(d: SyncDeps, force = false): Promise<RefreshOutcome> {
  let read: UserRead;
  try {
    read = await (d.read ?? readUsers)(d.ldap, d.query);
  } catch (err) {
    d.metrics.ldapUp.set(0);
    const meta = d.cache.meta;
    const serving = meta
      ? `authenticating from the snapshot of ${new Date(meta.fetchedAt).toISOString()} (${meta.users} users)`
      : 'no snapshot: authentication answers unavailable (454)';
    d.log.error({ err: (err as Error).message }, `LDAP unreachable for credentials: ${serving}`);
    return 'failed';
  }
  d.metrics.ldapUp.set(1);

  const wanted = new Map(read.users.map((u) => [userKey(u.uid), u]));
  const stored = d.cache.users;
  const removed = [...stored.keys()].filter((k) => !wanted.has(k));
  const changed = [...wanted].filter(([k, u]) => {
    const s = stored.get(k);
    return !s || !sameUser(s, u);
  });
  const share = stored.size > 0 ? removed.length / stored.size : 0;
  if (share > d.ldap.maxDeleteShare && !force) {
    d.log.error(
      { storedUsers: stored.size, readUsers: wanted.size, removed: removed.length },
      `credential refresh held back: it would remove ${Math.round(share * 100)} % of ${stored.size} users (routing.ldap.maxDeleteShare ${Math.round(d.ldap.maxDeleteShare * 100)} %); the snapshot in use keeps serving — check the directory, then refresh with force`,
    );
    return 'held';
  }

  // Claim this refresh: advance meta from the revision we know, or leave it to the replica that did.
  const metaEntry = await d.kv.get(credentialsMetaKey);
  const prev = metaEntry?.operation === 'PUT' ? decodeMeta(metaEntry.value) : null;
  const next: SnapshotMeta = {
    v: 1,
    version: (prev?.version ?? 0) + (changed.length + removed.length > 0 || !prev ? 1 : 0),
    fetchedAt: d.now(),
    users: wanted.size,
    server: read.server,
  };
  try {
    if (metaEntry && metaEntry.operation === 'PUT') {
      await d.kv.update(credentialsMetaKey, encodeMeta(next), metaEntry.revision);
    } else {
      await d.kv.create(credentialsMetaKey, encodeMeta(next));
    }
  } catch (err) {
    if (isConflict(err)) return 'raced';
    throw err;
  }
  // In batches: a first sync of thousands of users should not take one round trip each in turn.
  const writes = [
    ...changed.map(
      ([key, u]) =>
        () =>
          d.kv.put(key, encodeUser(u)),
    ),
    ...removed.map((key) => () => d.kv.delete(key)),
  ];
  for (let i = 0; i < writes.length; i += WRITE_BATCH) {
    await Promise.all(writes.slice(i, i + WRITE_BATCH).map((w) => w()));
  }
  if (changed.length + removed.length === 0) return 'unchanged';
  d.log.info(
    { version: next.version, users: wanted.size, changed: changed.length, removed: removed.length },
    'credential snapshot refreshed',
  );
  return 'applied';
}
