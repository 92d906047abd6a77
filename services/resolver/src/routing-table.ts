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
  /** Destination domain -> next hop, overriding MX lookup. */
  transports: ReadonlyMap<string, Transport>;
  /** Smarthost for every destination without a transport. */
  relay?: Transport;
  /** Alias expansion depth limit. */
  maxDepth: number;
  /** The SRS domain and codec, when SRS is on: bounces to its addresses go back (srs-reverse.ts). */
  srs?: SrsTable;
}

export type RoutingConfig = Pick<SluiceConfig, 'domains' | 'routing' | 'transports' | 'relay'> &
  Partial<Pick<SluiceConfig, 'srs'>>;

export const CONFIG_ALIASES_SOURCE = 'config routing.aliases';
export const CONFIG_FORWARDS_SOURCE = 'config routing.forwards';

/** Build the table from configuration (already validated by the config schema). */
export function buildRoutingTable(config: RoutingConfig): RoutingTable {
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
  const transports = new Map<string, Transport>();
  for (const [domain, t] of Object.entries(config.transports)) {
    transports.set(normalizeDomain(domain), { host: t.host, port: t.port, lmtp: t.lmtp });
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

/** Is this one of our domains (the primary or an alias domain)? */
export function isOurDomain(table: RoutingTable, domain: string): boolean {
  return domain === table.primary || table.aliasDomains.has(domain);
}
