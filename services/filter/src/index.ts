/** @sluice/filter: the before-queue verdict service (authentication now; scoring, greylisting later). */
export {
  type AuthenticationInput,
  type AuthenticationOutcome,
  type AuthResults,
  authenticateMessage,
  authenticationResultsHeader,
  describeAuthentication,
} from './authentication.ts';
export { createDnsResolver, type DnsResolve, type DnsResolverOptions } from './dns-resolver.ts';
export { authservIdFrom, filterService } from './filter-service.ts';
export { computeVerdict, type VerdictDeps } from './verdict.ts';
export { encodeFilterReply, handleVerdictRequest, type VerdictHandlerDeps } from './verdict-handler.ts';
