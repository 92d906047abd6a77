/**
 * The DNS resolver the filter's SPF, DKIM and DMARC checks use: a function
 * with `dns.promises.resolve`'s signature (what mailauth accepts as its
 * `resolver` option), asking the configured servers with the configured
 * per-server timeout, one try each, so a dead or slow DNS costs at most
 * `timeout` per server and shows up as temperror, not as a hang.
 *
 * Answers are cached for their TTL, capped at dns.cacheMaxTtl (@sluice/dns
 * caching-resolver.ts, decision 0043): every message asks the same SPF and
 * `_dmarc.` names of its sender, and without the cache each of those cost a
 * fresh socket per query.
 *
 * Errors keep node's codes (ENOTFOUND, ENODATA: the record does not exist;
 * ETIMEOUT, ESERVFAIL, ECONNREFUSED: DNS could not answer), which mailauth
 * maps to "none" and "temperror" as RFC 7208 §5 / RFC 7489 §6.6.3 require.
 */
import { createCachingResolver, type DnsResolve, type LookupSource } from '@sluice/dns';

export type { DnsResolve };

export interface DnsResolverOptions {
  /** "ip" or "ip:port" ("[v6]:port" for IPv6); empty: the system resolver's servers. */
  servers: readonly string[];
  /** Per-query timeout, seconds. */
  timeoutSeconds: number;
  /** Longest an answer is reused, seconds (config dns.cacheMaxTtl); 0: no cache. Default 300, as the config's. */
  cacheMaxTtlSeconds?: number;
  /** Where each answer came from: cache, shared, query (sluice_filter_dns_lookups_total). */
  onLookup?: (answer: LookupSource) => void;
}

export function createDnsResolver(opts: DnsResolverOptions): DnsResolve {
  return createCachingResolver({
    servers: opts.servers,
    timeoutSeconds: opts.timeoutSeconds,
    cacheMaxTtlSeconds: opts.cacheMaxTtlSeconds ?? 300,
    ...(opts.onLookup ? { onLookup: opts.onLookup } : {}),
  });
}
