/**
 * `sluice auth bans [IP|LOGIN] [--all]`: the brute-force bans in force, from
 * the throttle bucket every replica shares. Without an argument: every
 * current ban (--all: every record, counting ones too). With an IP (or an
 * IPv6 /64) or a login name: every record of that network or user, banned
 * or not. Keys are hashes (no name is stored, decision 0040): users of the
 * credential snapshot are shown by uid, the network you name by itself,
 * anything else by its hash. Exit 0.
 */
import { listThrottleEntries, loadCredentialSnapshot } from '@sluice/credentials';
import { entryJson, renderEntry, userNames } from './auth-ban-rows.ts';
import type { AuthContext } from './auth-context.ts';
import { describeTarget, parseAuthTarget, targetFilter } from './auth-target.ts';

export async function authBans(ctx: AuthContext, arg: string | undefined, all: boolean): Promise<number> {
  const cache = await loadCredentialSnapshot(ctx.kv.credentials, ctx.opts.loginDomains);
  const target = arg === undefined ? undefined : parseAuthTarget(arg, (l) => cache.lookup(l)?.uid);
  const names = {
    users: userNames(cache),
    networks: new Map(target?.kind === 'network' ? [[target.hash, target.network]] : []),
  };
  const now = ctx.now();
  const entries = await listThrottleEntries(ctx.kv.throttle, target ? targetFilter(target) : {});
  const shown = target || all ? entries : entries.filter((e) => e.record.until > now);
  const banned = entries.filter((e) => e.record.until > now).length;
  if (ctx.json) {
    ctx.io.out(
      JSON.stringify(
        shown.map((e) => entryJson(e, names, now)),
        null,
        2,
      ),
    );
    return 0;
  }
  const about = target ? ` for ${describeTarget(target)}` : '';
  ctx.io.out(
    `${banned} ban${banned === 1 ? '' : 's'} in force${about} (${entries.length} record${entries.length === 1 ? '' : 's'})`,
  );
  for (const e of shown) ctx.io.out(`  ${renderEntry(e, names, now)}`);
  return 0;
}
