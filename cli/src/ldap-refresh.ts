/**
 * `sluice ldap refresh [--force] [--json]`: ask one running resolver to read
 * the LDAP directory now. The new snapshot goes to the shared bucket and
 * every resolver replica takes it. A refresh that would delete more than
 * routing.ldap.maxDeleteShare of the entries is held back and says so;
 * --force applies it anyway (after the operator checked the directory).
 */
import { type LdapRefreshReply, ldapRefreshReplySchema, subjects } from '@sluice/proto';
import type { ProcessConfig } from '@sluice/runtime';
import { askResolver } from './resolver-rpc.ts';

export async function ldapRefresh(pc: ProcessConfig, force: boolean): Promise<LdapRefreshReply> {
  const timeoutMs =
    ((pc.config.routing.ldap?.timeout ?? 10) * pc.config.routing.ldap!.urls.length + 5) * 1000;
  const raw = await askResolver(pc, subjects.resolverLdapRefresh, { v: 1, force }, timeoutMs);
  return ldapRefreshReplySchema.parse(raw);
}

export function renderRefresh(r: LdapRefreshReply): string {
  const lines = [`ldap refresh: ${r.outcome}: ${r.message}`];
  for (const x of r.refused)
    lines.push(`  refused forward of ${x.uid}: ${JSON.stringify(x.value)} (${x.reason})`);
  return lines.join('\n');
}

/** 0 applied/unchanged, 1 held back or failed, 2 LDAP not configured. */
export function refreshExitCode(r: LdapRefreshReply): number {
  if (r.outcome === 'applied' || r.outcome === 'unchanged') return 0;
  return r.outcome === 'disabled' ? 2 : 1;
}
