/**
 * `sluice auth check LOGIN`: can this login name log in, as far as the
 * credential snapshot every replica authenticates from is concerned? Says
 * the uid it stands for, the names that log in as it, the format of each
 * stored hash (never the hash), the snapshot's version and age, and the
 * user's current bans. Exit 0 the user is in the snapshot, 1 it is not (an
 * unknown login, or one two users claim), or there is no snapshot at all.
 */
import { describeSnapshotUser, listThrottleEntries, loadCredentialSnapshot } from '@sluice/credentials';
import { entryJson, renderEntry, userNames } from './auth-ban-rows.ts';
import type { AuthContext } from './auth-context.ts';
import { parseAuthTarget } from './auth-target.ts';

export async function authCheck(ctx: AuthContext, login: string): Promise<number> {
  const domains = ctx.opts.loginDomains ?? [];
  const cache = await loadCredentialSnapshot(ctx.kv.credentials, domains);
  const now = ctx.now();
  const meta = cache.meta;
  const snapshot = meta
    ? {
        version: meta.version,
        users: meta.users,
        server: meta.server,
        fetchedAt: new Date(meta.fetchedAt).toISOString(),
        ageSeconds: Math.round((now - meta.fetchedAt) / 1000),
      }
    : null;
  const user = describeSnapshotUser(cache, login, domains);
  const target = parseAuthTarget(user?.uid ?? login, (l) => cache.lookup(l)?.uid);
  const names = { users: userNames(cache), networks: new Map<string, string>() };
  const entries =
    target.kind === 'user' ? await listThrottleEntries(ctx.kv.throttle, { userHash: target.hash }) : [];
  const bans = entries.filter((e) => e.record.until > now);
  if (ctx.json) {
    ctx.io.out(
      JSON.stringify(
        {
          login,
          inSnapshot: user !== undefined,
          user: user ?? null,
          snapshot,
          bans: bans.map((e) => entryJson(e, names, now)),
        },
        null,
        2,
      ),
    );
    return user ? 0 : 1;
  }
  const snapshotLine = snapshot
    ? `version ${snapshot.version}, ${snapshot.users} users, from ${snapshot.server}, read ${snapshot.fetchedAt} (${snapshot.ageSeconds} s ago)`
    : 'none: LDAP was never read (nobody can log in; AUTH answers 454 4.7.0)';
  if (!user) {
    ctx.io.out(
      `${login}: not in the credential snapshot (no such login, or a login two users claim): it cannot log in`,
    );
  } else {
    ctx.io.out(`${login}: in the credential snapshot as ${user.uid}`);
    ctx.io.out(`  logins:   ${[user.uid, ...user.logins].join(', ')}`);
    ctx.io.out(`  hashes:   ${user.hashFormats.join(', ')}`);
  }
  ctx.io.out(`  snapshot: ${snapshotLine}`);
  ctx.io.out(`  bans:     ${bans.length === 0 ? 'none' : ''}`);
  for (const e of bans) ctx.io.out(`    ${renderEntry(e, names, now)}`);
  return user ? 0 : 1;
}
