/**
 * The routing table: everything the resolver knows about where mail for an
 * address goes, built once from configuration and then only read. Lookups
 * and expansion (expand.ts) are plain functions over it, so a reloaded
 * config or, later, an LDAP snapshot builds a new table and swaps it in
 * without touching the expansion logic. Every rule remembers its source
 * ("config routing.aliases", later "ldap snapshot 42"), so `sluice lookup`
 * and the timeline can say which source decided.
 *
 * Keys are comparison keys (address.ts): lower-case local part, lower-case
 * domain. A key "@example.org" is the catch-all of that domain: it applies to
 * an address of the domain that has no rule of its own.
 *
 * LDAP (ldap-snapshot.ts) adds forward rules for its domain with the source
 * "ldap snapshot N"; a config rule for the same address wins (the operator's
 * file overrides the directory). `ldap` says which snapshot the table holds
 * and how old it may get before lookups in its domain tempfail.
 */
import { type SluiceConfig, srsDomainOf } from '@sluice/config';
import { normalizeDomain, parseAddress } from './address.ts';
import { buildSrsTable, type SrsTable } from './srs-reverse.ts';

export type RoutingRuleKind = 'alias' | 'forward';

export interface RoutingRule {
  kind: RoutingRuleKind;
  /** Where mail for the key goes: one or more addresses, ours or outside. */
  targets: string[];
  /** Which source defined it, for the trail and the timeline. */
  source: string;
}

/** What the table knows about its LDAP source: the snapshot in it and the staleness bound. */
export interface LdapView {
  /** The domain whose addresses the directory routes. */
  domain: string;
  /** The snapshot folded into `rules`; absent: none read yet (lookups in the domain tempfail). */
  snapshot?: { version: number; fetchedAt: number };
  maxStalenessMs: number;
  /** How often the directory is re-read (the resolve stage retries that often while it cannot answer). */
  refreshIntervalMs: number;
}

export interface Transport {
  host: string;
  port: number;
  lmtp: boolean;
}

export interface RoutingTable {
  primary: string;
  /** Alias domains: user@alias is user@primary unless the alias domain has a rule of its own. */
  aliasDomains: ReadonlySet<string>;
  /** Comparison key (or "@domain") -> rules, in the order they apply. */
  rules: ReadonlyMap<string, readonly RoutingRule[]>;
  /** Destination domain, or address comparison key, -> next hop, overriding MX lookup. */
  transports: ReadonlyMap<string, Transport>;
  /** Smarthost for every destination without a transport. */
  relay?: Transport;
  /** Alias expansion depth limit. */
  maxDepth: number;
  /** Comparison key -> text the address is refused with (routing.reject). */
  rejects: ReadonlyMap<string, string>;
  /** Plus-addressing separator ('' : off). */
  plusSeparator: string;
  ldap?: LdapView;
  /** The SRS domain and codec, when SRS is on: bounces to its addresses go back (srs-reverse.ts). */
  srs?: SrsTable;
}

/** The rules an LDAP snapshot contributes: uid -> forward targets (already checked). */
export interface LdapRules {
  version: number;
  fetchedAt: number;
  entries: Readonly<Record<string, readonly string[]>>;
}

export type RoutingConfig = Pick<SluiceConfig, 'domains' | 'routing' | 'transports' | 'relay'> &
  Partial<Pick<SluiceConfig, 'srs'>>;

export const CONFIG_ALIASES_SOURCE = 'config routing.aliases';
export const CONFIG_FORWARDS_SOURCE = 'config routing.forwards';

/** Build the table from configuration (already validated by the config schema). */
export function ldapSource(version: number): string {
  return `ldap snapshot ${version}`;
}

export function buildRoutingTable(config: RoutingConfig, ldap?: LdapRules): RoutingTable {
  const rules = new Map<string, RoutingRule[]>();
  const add = (key: string, rule: RoutingRule) => {
    const list = rules.get(key);
    if (list) list.push(rule);
    else rules.set(key, [rule]);
  };
  // An address in both maps gets both: aliases first, then forwards.
  for (const [key, targets] of Object.entries(config.routing.aliases)) {
    add(ruleKey(key), { kind: 'alias', targets: [...targets], source: CONFIG_ALIASES_SOURCE });
  }
  for (const [key, targets] of Object.entries(config.routing.forwards)) {
    add(ruleKey(key), { kind: 'forward', targets: [...targets], source: CONFIG_FORWARDS_SOURCE });
  }
  const ldapCfg = config.routing.ldap;
  const ldapDomain = ldapCfg ? normalizeDomain(ldapCfg.domain ?? config.domains.primary) : undefined;
  if (ldap && ldapDomain) {
    const source = ldapSource(ldap.version);
    for (const [uid, targets] of Object.entries(ldap.entries)) {
      const key = `${uid.toLowerCase()}@${ldapDomain}`;
      if (targets.length === 0 || rules.has(key)) continue;
      rules.set(key, [{ kind: 'forward', targets: [...targets], source }]);
    }
  }
  const rejects = new Map<string, string>();
  for (const [key, text] of Object.entries(config.routing.reject ?? {})) rejects.set(ruleKey(key), text);
  const transports = new Map<string, Transport>();
  for (const [key, t] of Object.entries(config.transports)) {
    const k = key.includes('@') ? ruleKey(key) : normalizeDomain(key);
    transports.set(k, { host: t.host, port: t.port, lmtp: t.lmtp });
  }
  const relay = config.relay
    ? { host: config.relay.host, port: config.relay.port, lmtp: config.relay.lmtp }
    : undefined;
  return {
    primary: normalizeDomain(config.domains.primary),
    aliasDomains: new Set(config.domains.aliases.map(normalizeDomain)),
    rules,
    transports,
    relay,
    maxDepth: config.routing.maxDepth,
    rejects,
    plusSeparator: config.routing.plusSeparator ?? '+',
    ldap:
      ldapCfg && ldapDomain
        ? {
            domain: ldapDomain,
            snapshot: ldap ? { version: ldap.version, fetchedAt: ldap.fetchedAt } : undefined,
            maxStalenessMs: ldapCfg.maxStaleness * 1000,
            refreshIntervalMs: ldapCfg.refreshInterval * 1000,
          }
        : undefined,
    srs: config.srs
      ? buildSrsTable({ ...config.srs, domain: srsDomainOf({ srs: config.srs, domains: config.domains }) })
      : undefined,
  };
}

/** Normalise a config key: "user@Domain" -> "user@domain", "@Domain" -> "@domain". */
function ruleKey(key: string): string {
  if (key.startsWith('@')) return `@${normalizeDomain(key.slice(1))}`;
  return parseAddress(key)?.key ?? key.toLowerCase();
}

/** The transport for an address: its own (user@domain), else its domain's. */
export function transportFor(
  table: RoutingTable,
  key: string,
  domain: string,
): { name: string; transport: Transport } | undefined {
  const own = table.transports.get(key);
  if (own) return { name: key, transport: own };
  const t = table.transports.get(domain);
  return t ? { name: domain, transport: t } : undefined;
}

/** Is this one of our domains (the primary or an alias domain)? */
export function isOurDomain(table: RoutingTable, domain: string): boolean {
  return domain === table.primary || table.aliasDomains.has(domain);
}
