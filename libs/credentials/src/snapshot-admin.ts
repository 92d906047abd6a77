/**
 * The operator's access to the credential snapshot (`sluice auth check`,
 * `sluice auth refresh`), straight from buckets.credentials and LDAP rather
 * than through a running replica: the bucket is the shared truth every
 * replica follows through its KV watch, so a refresh written here reaches
 * all of them, and a check reads what they authenticate from. Never a hash
 * leaves here: a user is described by its id, login names and hash formats.
 */
import type { KV } from '@nats-io/kv';
import type { Logger } from '@sluice/log';
import { credentialsMetaKey } from '@sluice/proto';
import { authMetrics, createMetrics } from '@sluice/telemetry';
import { CredentialCache } from './credential-cache.ts';
import { userQueryOf } from './credential-options.ts';
import { decodeMeta, type SnapshotMeta } from './credential-records.ts';
import { refreshCredentials } from './credential-sync.ts';
import type { readUsers } from './ldap-users.ts';
import type { CredentialOptions, RefreshOutcome } from './types.ts';
import { hashFormat } from './verify-password.ts';

/** What may be shown of a user in the snapshot. */
export interface SnapshotUser {
  uid: string;
  /** Names that log in as this user besides the uid (uid@domain, the login attributes' addresses). */
  logins: string[];
  /** The format of each stored hash (CRYPT-6, SSHA, ARGON2, ...), never the hash. */
  hashFormats: string[];
}

/** A loaded copy of the snapshot (the watch stopped once the stored values are in). */
export async function loadCredentialSnapshot(kv: KV, loginDomains: string[] = []): Promise<CredentialCache> {
  const cache = new CredentialCache(loginDomains);
  await cache.start(kv);
  cache.stop();
  return cache;
}

/** The user a login name stands for, as it may be shown; undefined when unknown or ambiguous. */
export function describeSnapshotUser(
  cache: CredentialCache,
  login: string,
  loginDomains: string[] = [],
): SnapshotUser | undefined {
  const u = cache.lookup(login);
  if (!u) return undefined;
  const uid = u.uid.toLowerCase();
  return {
    uid: u.uid,
    logins: [...loginDomains.map((d) => `${uid}@${d.toLowerCase()}`), ...u.logins],
    hashFormats: u.hashes.map(hashFormat),
  };
}

/**
 * Read LDAP into the snapshot now, as a replica's timed refresh does
 * (credential-sync.ts: one writer per refresh, only what changed, the
 * deletion guard unless `force`). Resolves the outcome, the snapshot's meta
 * afterwards, and the messages the refresh logged (why it was held back).
 */
export async function refreshCredentialSnapshot(
  kv: KV,
  opts: CredentialOptions,
  force: boolean,
  log: Logger,
  read?: typeof readUsers,
): Promise<{ outcome: RefreshOutcome; meta: SnapshotMeta | null }> {
  const cache = await loadCredentialSnapshot(kv, opts.loginDomains);
  const outcome = await refreshCredentials(
    {
      kv,
      cache,
      log,
      metrics: authMetrics(createMetrics().registry),
      ldap: opts.ldap,
      query: userQueryOf(opts),
      now: Date.now,
      read,
    },
    force,
  );
  const e = await kv.get(credentialsMetaKey);
  return { outcome, meta: e?.operation === 'PUT' ? decodeMeta(e.value) : null };
}
