/**
 * The DNS resolver the filter's SPF, DKIM and DMARC checks use: a function
 * with `dns.promises.resolve`'s signature (what mailauth accepts as its
 * `resolver` option), built on a node:dns Resolver with the configured
 * servers and timeout and one try per server, so a dead or slow DNS costs at
 * most `timeout` per query and shows up as temperror, not as a hang.
 *
 * Errors keep node's codes (ENOTFOUND, ENODATA: the record does not exist;
 * ETIMEOUT, ESERVFAIL, ECONNREFUSED: DNS could not answer), which mailauth
 * maps to "none" and "temperror" as RFC 7208 §5 / RFC 7489 §6.6.3 require.
 */
import { Resolver } from 'node:dns/promises';

/** `dns.promises.resolve(hostname, rrtype)`: what mailauth calls. */
export type DnsResolve = (name: string, rrtype: string) => Promise<string[][] | string[]>;

export interface DnsResolverOptions {
  /** "ip" or "ip:port" ("[v6]:port" for IPv6); empty: the system resolver's servers. */
  servers: readonly string[];
  /** Per-query timeout, seconds. */
  timeoutSeconds: number;
}

export function createDnsResolver(opts: DnsResolverOptions): DnsResolve {
  const resolver = new Resolver({ timeout: Math.max(1, Math.round(opts.timeoutSeconds * 1000)), tries: 1 });
  if (opts.servers.length > 0) resolver.setServers([...opts.servers]);
  // MX answers are objects, not strings; mailauth reads them as node returns them.
  return (name, rrtype) => resolver.resolve(name, rrtype) as unknown as Promise<string[][] | string[]>;
}
