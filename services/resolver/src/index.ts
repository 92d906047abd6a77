/** @sluice/resolver: address routing (aliases, domain aliases, forwards, transports) and the resolve stage. */
export { formatAddress, normalizeDomain, type ParsedAddress, parseAddress } from './address.ts';
export { watchConfigFile } from './config-reload.ts';
export {
  type ExpandedTarget,
  type Expansion,
  type ExpansionError,
  type ExpansionErrorKind,
  expandRecipient,
} from './expand.ts';
export { checkForward } from './forward-check.ts';
export { type DirectoryRead, type LdapConfig, readDirectory, readEntry } from './ldap-directory.ts';
export { entryFilter, escapeFilterValue } from './ldap-filter.ts';
export { LdapKeeper } from './ldap-keeper.ts';
export { decodeSnapshot, deletionShare, encodeSnapshot, type LdapSnapshot } from './ldap-snapshot.ts';
export { lookupAddress } from './lookup.ts';
export {
  answerLookup,
  createResolverService,
  type ResolverDeps,
  resolveEnvelope,
  resolverService,
} from './resolver-service.ts';
export { describeRoute, routeFor, routeKey } from './route.ts';
export { RoutingState } from './routing-state.ts';
export {
  buildRoutingTable,
  CONFIG_ALIASES_SOURCE,
  CONFIG_FORWARDS_SOURCE,
  isOurDomain,
  type RoutingConfig,
  type RoutingRule,
  type RoutingRuleKind,
  type RoutingTable,
  type Transport,
} from './routing-table.ts';
export {
  type FailedBranch,
  failedBranches,
  type Hop,
  type RecipientResolution,
  type RoutedTarget,
  resolveRecipients,
  splitByRoute,
} from './split.ts';
