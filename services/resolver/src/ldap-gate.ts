/**
 * May an answer about an address of the LDAP domain be given now? The
 * directory is read into a snapshot (ldap-snapshot.ts); while LDAP is down the
 * snapshot keeps answering, up to routing.ldap.maxStaleness. Past that bound,
 * or before any snapshot exists, an address the directory would decide (no
 * config rule of its own) is "unavailable": the RCPT tempfails (451) instead
 * of a wrong "unknown user" for someone the directory may well know.
 */
import type { RoutingRule, RoutingTable } from './routing-table.ts';
import { ldapSource } from './routing-table.ts';

export type LdapGate =
  | { decides: false }
  | { decides: true; usable: true; source: string }
  | { decides: true; usable: false; message: string };

export function ldapGate(
  table: RoutingTable,
  domain: string,
  rules: readonly RoutingRule[] | undefined,
  now: number,
): LdapGate {
  const ldap = table.ldap;
  if (!ldap || domain !== ldap.domain) return { decides: false };
  if (rules && !rules.some((r) => r.source.startsWith('ldap '))) return { decides: false };
  if (!ldap.snapshot) {
    return { decides: true, usable: false, message: 'no LDAP snapshot yet (directory not read)' };
  }
  const ageMs = now - ldap.snapshot.fetchedAt;
  if (ageMs > ldap.maxStalenessMs) {
    const age = Math.round(ageMs / 1000);
    return {
      decides: true,
      usable: false,
      message: `${ldapSource(ldap.snapshot.version)} is ${age} s old, past routing.ldap.maxStaleness (${ldap.maxStalenessMs / 1000} s)`,
    };
  }
  return { decides: true, usable: true, source: ldapSource(ldap.snapshot.version) };
}
