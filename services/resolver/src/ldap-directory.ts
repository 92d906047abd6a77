/**
 * Read the routing entries of an LDAP directory with ldapts: connect to the
 * first routing.ldap.urls entry that answers (ldaps://, or ldap:// with
 * StartTLS per RFC 4511 §4.14 when startTls is set, verified against caFile),
 * bind (bindDn/bindPassword, anonymous without), search baseDn with the
 * configured filter for the uid and forward attributes, paged (RFC 2696),
 * then unbind. Every forward value passes forward-check.ts; refused values are
 * returned with the reason, never routed. An entry without a forward is kept
 * (with no targets): it counts as an entry for the deletion guard.
 */
import { attributeValues, type LdapConfig, withLdapClient as withClient } from '@sluice/ldap';
import { checkForward } from './forward-check.ts';
import { entryFilter } from './ldap-filter.ts';

export type { LdapConfig };

export interface RefusedForward {
  uid: string;
  value: string;
  reason: string;
}

export interface DirectoryRead {
  /** Lower-case uid -> checked forward targets (possibly none). */
  entries: Record<string, string[]>;
  refused: RefusedForward[];
  /** The URL that answered. */
  server: string;
}

export interface DirectoryContext {
  /** The domain of the directory's addresses, and its alias domains (for the self-loop check). */
  domains: string[];
}

function collect(
  entries: Record<string, unknown>[],
  cfg: LdapConfig,
  ctx: DirectoryContext,
  out: DirectoryRead,
) {
  for (const e of entries) {
    const uids = attributeValues(e[cfg.uidAttribute]);
    const uid = uids[0];
    if (uid === undefined) continue;
    if (/[\x00-\x20@]/.test(uid)) {
      out.refused.push({ uid, value: uid, reason: 'uid is not a plain local part' });
      continue;
    }
    const key = uid.toLowerCase();
    const own = ctx.domains.map((d) => `${key}@${d}`);
    const targets: string[] = [];
    for (const value of attributeValues(e[cfg.forwardAttribute])) {
      const c = checkForward(value, own);
      if (c.ok) targets.push(c.address);
      else out.refused.push({ uid, value, reason: c.reason });
    }
    out.entries[key] = targets;
  }
}

/** Read every routing entry. Throws when no URL answers or the search fails. */
export async function readDirectory(cfg: LdapConfig, ctx: DirectoryContext): Promise<DirectoryRead> {
  return withClient(cfg, async (client, url) => {
    const { searchEntries } = await client.search(cfg.baseDn, {
      scope: 'sub',
      filter: cfg.filter,
      attributes: [cfg.uidAttribute, cfg.forwardAttribute],
      paged: { pageSize: 500 },
      timeLimit: Math.ceil(cfg.timeout),
    });
    const out: DirectoryRead = { entries: {}, refused: [], server: url };
    collect(searchEntries, cfg, ctx, out);
    return out;
  });
}

/** Read the one entry of a uid (the filter value escaped per RFC 4515). */
export async function readEntry(cfg: LdapConfig, ctx: DirectoryContext, uid: string): Promise<DirectoryRead> {
  return withClient(cfg, async (client, url) => {
    const { searchEntries } = await client.search(cfg.baseDn, {
      scope: 'sub',
      filter: entryFilter(cfg.filter, cfg.uidAttribute, uid),
      attributes: [cfg.uidAttribute, cfg.forwardAttribute],
      timeLimit: Math.ceil(cfg.timeout),
    });
    const out: DirectoryRead = { entries: {}, refused: [], server: url };
    collect(searchEntries, cfg, ctx, out);
    return out;
  });
}
