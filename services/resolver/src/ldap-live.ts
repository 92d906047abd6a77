/**
 * `sluice lookup --live`: what the LDAP directory says about one address
 * right now, next to the snapshot's answer, so an operator can see whether a
 * change made in LDAP has reached the snapshot yet. The entry is read with a
 * filter built from the address' local part, escaped per RFC 4515
 * (ldap-filter.ts), so a crafted address cannot widen the search. Only for
 * the operator's command: RCPT-time lookups never wait on LDAP.
 */
import { parseAddress } from './address.ts';
import { type DirectoryContext, type LdapConfig, readEntry } from './ldap-directory.ts';
import { plusBase } from './plus-address.ts';
import type { RoutingTable } from './routing-table.ts';

export async function liveTrail(
  cfg: LdapConfig,
  directory: DirectoryContext,
  table: RoutingTable,
  address: string,
): Promise<string[]> {
  const a = parseAddress(address);
  const domain = table.ldap?.domain;
  if (!a || !domain) return [];
  const inDomain = a.domain === domain || table.aliasDomains.has(a.domain);
  if (!inDomain) return [`LDAP now: ${a.domain} is not the directory's domain (${domain})`];
  const uid = (plusBase(a, table.plusSeparator) ?? a).local;
  try {
    const read = await readEntry(cfg, directory, uid);
    const lines: string[] = [];
    const entry = read.entries[uid.toLowerCase()];
    if (entry === undefined) lines.push(`LDAP now (${read.server}): no entry for uid ${uid}`);
    else
      lines.push(
        `LDAP now (${read.server}): uid ${uid} -> ${entry.length > 0 ? entry.join(', ') : '(no forward)'}`,
      );
    for (const r of read.refused)
      lines.push(`LDAP now: forward ${JSON.stringify(r.value)} refused (${r.reason})`);
    return lines;
  } catch (err) {
    return [`LDAP now: ${(err as Error).message}`];
  }
}
