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
 *
 * Queries in flight are shared: a question (name and type) asked again while
 * the same question is still out gets that query's answer or error instead
 * of a query of its own. Under load many messages from one sender are
 * checked at once (the same SPF record, the same DMARC tree walk), and each
 * query costs a c-ares request, a UDP round trip and its promise (~6% of
 * Sluice's CPU in the bare-forwarding profile, decision 0039). Nothing is
 * kept once the answer is in: no cache, so a DNS change takes effect exactly
 * as before (node's c-ares query cache is off).
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
  const inFlight = new Map<string, Promise<string[][] | string[]>>();
  return (name, rrtype) => {
    // DNS names compare case-insensitively (RFC 4343); the type as mailauth spells it.
    const key = `${rrtype} ${name.toLowerCase()}`;
    let query = inFlight.get(key);
    if (!query) {
      // MX answers are objects, not strings; mailauth reads them as node returns them.
      const asked = resolver.resolve(name, rrtype) as unknown as Promise<string[][] | string[]>;
      query = asked.finally(() => inFlight.delete(key));
      inFlight.set(key, query);
    }
    return query.then(copyAnswer);
  };
}

/** Every asker gets arrays of its own (mailauth may sort or join what it is given). */
function copyAnswer(answer: string[][] | string[]): string[][] | string[] {
  return answer.map((x) =>
    Array.isArray(x) ? [...x] : typeof x === 'object' && x ? { ...(x as object) } : x,
  ) as string[][] | string[];
}
