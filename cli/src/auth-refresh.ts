/**
 * `sluice auth refresh [--force]`: read the LDAP directory into the
 * credential snapshot now, from this machine (it needs to reach LDAP with
 * the configured bind), exactly as a replica's timed refresh does; every
 * submission replica takes the change through its KV watch. A refresh that
 * would remove more than the directory's maxDeleteShare of the users is
 * held back and says so; --force applies it (after checking the directory).
 * Exit 0 applied, unchanged or raced (another replica wrote the same read),
 * 1 held back or LDAP unreachable.
 */
import { refreshCredentialSnapshot, type SnapshotMeta } from '@sluice/credentials';
import { createLogger } from '@sluice/log';
import type { AuthContext } from './auth-context.ts';

function describeMeta(m: SnapshotMeta | null, now: number): string {
  if (!m) return 'no snapshot yet';
  const ago = Math.round((now - m.fetchedAt) / 1000);
  return `snapshot version ${m.version}, ${m.users} users, from ${m.server}, read ${new Date(m.fetchedAt).toISOString()} (${ago} s ago)`;
}

const OUTCOME_TEXT = {
  applied: 'applied',
  unchanged: 'unchanged (the directory holds what the snapshot holds)',
  raced: 'another replica refreshed at the same moment: its snapshot is current',
  held: 'HELD BACK',
  failed: 'FAILED',
} as const;

export async function authRefresh(ctx: AuthContext, force: boolean): Promise<number> {
  // The refresh explains itself in log lines (why held back, LDAP unreachable): shown as text.
  const said: Array<{ level: string; msg: string }> = [];
  const log = createLogger({
    level: 'info',
    instance: 'sluice-cli',
    destination: { write: (line: string) => void said.push(JSON.parse(line)) },
  });
  const { outcome, meta } = await refreshCredentialSnapshot(ctx.kv.credentials, ctx.opts, force, log);
  if (ctx.json) {
    ctx.io.out(JSON.stringify({ outcome, force, meta, messages: said.map((l) => l.msg) }, null, 2));
  } else {
    ctx.io.out(`auth refresh: ${OUTCOME_TEXT[outcome]}${force ? ' (--force)' : ''}`);
    for (const l of said) ctx.io.out(`  ${l.msg}`);
    ctx.io.out(`  ${describeMeta(meta, ctx.now())}`);
  }
  return outcome === 'held' || outcome === 'failed' ? 1 : 0;
}
