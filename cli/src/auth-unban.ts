/**
 * `sluice auth unban IP|LOGIN`: lift the bans of a client network (every
 * user's ban from it, and the network's own) or of a user (from every
 * network, and the brake), for every replica at once: the failure counts,
 * the bans and their escalation are cleared in the shared throttle bucket
 * (compare-and-set, so a failure counted meanwhile is not lost); a user's
 * usual networks stay usual. Exit 0 a ban was lifted, 1 there was none.
 */
import { liftBans, loadCredentialSnapshot } from '@sluice/credentials';
import { entryJson, renderEntry, userNames } from './auth-ban-rows.ts';
import type { AuthContext } from './auth-context.ts';
import { describeTarget, parseAuthTarget, targetFilter } from './auth-target.ts';

export async function authUnban(ctx: AuthContext, arg: string): Promise<number> {
  const cache = await loadCredentialSnapshot(ctx.kv.credentials, ctx.opts.loginDomains);
  const target = parseAuthTarget(arg, (l) => cache.lookup(l)?.uid);
  const names = {
    users: userNames(cache),
    networks: new Map(target.kind === 'network' ? [[target.hash, target.network]] : []),
  };
  const now = ctx.now();
  const { lifted, cleared } = await liftBans(ctx.kv.throttle, targetFilter(target), ctx.now);
  if (ctx.json) {
    ctx.io.out(
      JSON.stringify(
        { target: describeTarget(target), lifted: lifted.map((e) => entryJson(e, names, now)), cleared },
        null,
        2,
      ),
    );
  } else if (lifted.length === 0) {
    ctx.io.out(
      `no ban on ${describeTarget(target)}${cleared > 0 ? ` (${cleared} failure count${cleared === 1 ? '' : 's'} cleared)` : ''}`,
    );
  } else {
    ctx.io.out(`lifted ${lifted.length} ban${lifted.length === 1 ? '' : 's'} on ${describeTarget(target)}:`);
    for (const e of lifted) ctx.io.out(`  ${renderEntry(e, names, now)}`);
  }
  return lifted.length > 0 ? 0 : 1;
}
