/**
 * A drop-in for `dns.promises.resolve(name, rrtype)` that caches answers for
 * their TTL: what the filter's SPF, DKIM and DMARC checks (mailauth) call for
 * every message. node:dns (c-ares) cannot be cached in front of, as it gives
 * no TTL for TXT and none for negative answers, and it pays a fresh socket
 * and a DNSException with a stack for each query; here the same few names
 * (the sender's SPF, `_dmarc.` of the From domain and its parent) cost one
 * query per TTL instead of one per message.
 *
 * Answers have node's shapes for the rrtypes mailauth asks (A, AAAA: string[];
 * TXT: string[][] of character-strings, read as latin1 like node; MX:
 * {exchange, priority, type}[]; CNAME, PTR, NS: string[]), following a CNAME chain
 * in the answer as c-ares does. Any other rrtype goes to node:dns, uncached.
 *
 * Failures reject with an Error carrying node's `code` (what mailauth reads):
 * ENOTFOUND (NXDOMAIN) and ENODATA (no record of the type), which SPF/DMARC
 * read as "none"; ESERVFAIL, EREFUSED, ETIMEOUT, ECONNREFUSED... which they
 * read as temperror (RFC 7208 §5, RFC 7489 §6.6.3). The errors are built
 * without a stack trace: a NXDOMAIN is an everyday answer, not a bug.
 *
 * Caching (answer-cache.ts): a positive answer for the smallest TTL of its
 * RRset and the CNAMEs leading to it (RFC 2181 §5.2: one TTL per RRset); a
 * negative one (NXDOMAIN, NODATA) for min(SOA TTL, SOA MINIMUM) of the SOA in
 * the authority section (RFC 2308 §5), and not at all without an SOA
 * (RFC 2308 §5: "Negative responses without SOA records SHOULD NOT be
 * cached"); both capped at `cacheMaxTtlSeconds`. SERVFAIL, REFUSED and
 * transport failures are never cached (RFC 2308 §7 allows it; we would rather
 * ask again than hold a resolver's bad minute against the next messages).
 *
 * Transport (dns-exchange.ts): one fresh UDP socket per query (random source
 * port and id, RFC 5452 §9.2), TCP when truncated. The servers are asked in
 * order, each once with the full timeout, moving on after a transport failure
 * or SERVFAIL/REFUSED, as c-ares does with `tries: 1`.
 */
import { getServers } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import type * as dnsPacket from 'dns-packet';
import { createAnswerCache, type LookupSource } from './answer-cache.ts';
import { type DnsServerAddress, exchange, parseResolverAddress } from './dns-exchange.ts';

/** `dns.promises.resolve(hostname, rrtype)` as mailauth calls it. */
export type DnsResolve = (name: string, rrtype: string) => Promise<string[][] | string[]>;

export interface CachingResolverOptions {
  /** "ip" or "ip:port" ("[v6]:port" for IPv6); empty: the system resolver's servers. */
  servers: readonly string[];
  /** Per-server timeout, seconds. */
  timeoutSeconds: number;
  /** Longest any answer is reused, seconds; 0: no cache (every lookup asks). */
  cacheMaxTtlSeconds: number;
  /** Bound on cached answers (least recently used go first). Default 10,000. */
  cacheMaxEntries?: number;
  /** Monotonic milliseconds (tests). */
  now?: () => number;
  /** Told where each cacheable lookup's answer came from (a metric). */
  onLookup?: (answer: LookupSource) => void;
}

/** What one question came to: records in node's shape, or node's error code. */
type Outcome = { records: unknown[] } | { code: string };

/** The rrtypes answered (and cached) here, with node's syscall name for error messages. */
const SUPPORTED: Record<string, string> = {
  A: 'queryA',
  AAAA: 'queryAaaa',
  TXT: 'queryTxt',
  MX: 'queryMx',
  CNAME: 'queryCname',
  PTR: 'queryPtr',
  NS: 'queryNs',
};

const DEFAULT_MAX_ENTRIES = 10_000;

export function createCachingResolver(opts: CachingResolverOptions): DnsResolve {
  const addresses = opts.servers.length > 0 ? opts.servers : getServers();
  const servers = addresses.map(parseResolverAddress);
  const timeoutMs = Math.max(1, Math.round(opts.timeoutSeconds * 1000));
  const cache = createAnswerCache<Outcome>({
    maxTtlSeconds: opts.cacheMaxTtlSeconds,
    maxEntries: opts.cacheMaxEntries ?? DEFAULT_MAX_ENTRIES,
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.onLookup ? { onLookup: opts.onLookup } : {}),
  });
  let fallback: Resolver | undefined;

  return async (name, rrtype) => {
    const type = String(rrtype ?? 'A').toUpperCase();
    const syscall = SUPPORTED[type];
    if (!syscall) {
      // Not asked by mailauth today: node:dns answers it, as before, uncached.
      fallback ??= withServers(new Resolver({ timeout: timeoutMs, tries: 1 }), addresses);
      return fallback.resolve(name, type) as unknown as Promise<string[][] | string[]>;
    }
    // DNS names compare case-insensitively (RFC 4343); "x." and "x" are the same name.
    const qname = String(name).replace(/\.$/, '');
    const key = `${type} ${qname.toLowerCase()}`;
    const outcome = await cache.get(key, () => ask(servers, qname, type as dnsPacket.RecordType, timeoutMs));
    if ('code' in outcome) throw dnsError(outcome.code, syscall, qname);
    // A copy: callers sort MX lists in place, and the cached one is shared.
    return outcome.records.slice() as string[][] | string[];
  };
}

function withServers(resolver: Resolver, servers: readonly string[]): Resolver {
  resolver.setServers([...servers]);
  return resolver;
}

/** Ask each server in turn until one answers with something other than SERVFAIL/REFUSED. */
async function ask(
  servers: readonly DnsServerAddress[],
  name: string,
  type: dnsPacket.RecordType,
  timeoutMs: number,
): Promise<{ value: Outcome; ttlSeconds?: number }> {
  let failure = 'ECONNREFUSED';
  for (const server of servers) {
    let reply: dnsPacket.DecodedPacket;
    try {
      reply = await exchange(server, name, type, { timeoutMs, dnssec: false });
    } catch (err) {
      failure = transportCode(err);
      if (failure === 'EBADNAME') break; // the name itself cannot be asked: no server will do better
      continue;
    }
    const read = readReply(reply, name, type);
    if ('code' in read.value && (read.value.code === 'ESERVFAIL' || read.value.code === 'EREFUSED')) {
      failure = read.value.code;
      continue;
    }
    return read;
  }
  return { value: { code: failure } }; // never cached
}

function transportCode(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.length > 0) return code;
  // dns-packet throws plain Errors for names it cannot encode (a label over 63 bytes...).
  if (err instanceof Error && /label|name/i.test(err.message)) return 'EBADNAME';
  return 'EBADRESP';
}

const RCODE_ERRORS: Record<string, string> = {
  SERVFAIL: 'ESERVFAIL',
  REFUSED: 'EREFUSED',
  FORMERR: 'EFORMERR',
  NOTIMP: 'ENOTIMP',
};

/** Records in node's shape and how long they may be reused, or the error code. Exported for tests. */
export function readReply(
  reply: dnsPacket.DecodedPacket,
  name: string,
  type: dnsPacket.RecordType,
): { value: Outcome; ttlSeconds?: number } {
  const rcode = (reply as { rcode?: string }).rcode ?? 'NOERROR';
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN')
    return { value: { code: RCODE_ERRORS[rcode] ?? 'EBADRESP' } };
  const answers = reply.answers ?? [];
  // Follow the CNAME chain from the question's name, as c-ares does (RFC 1034 §3.6.2).
  const owners = new Set([norm(name)]);
  let ttl = Number.POSITIVE_INFINITY;
  if (type !== 'CNAME') {
    for (let current = norm(name), hops = 0; hops < 16; hops++) {
      const link = answers.find((a) => a.type === 'CNAME' && norm(a.name) === current);
      if (!link) break;
      ttl = Math.min(ttl, ttlOf(link));
      current = norm(String((link as dnsPacket.StringAnswer).data));
      owners.add(current);
    }
  }
  const matching = answers.filter((a) => a.type === type && owners.has(norm(a.name)));
  if (rcode === 'NOERROR' && matching.length > 0) {
    for (const a of matching) ttl = Math.min(ttl, ttlOf(a));
    return { value: { records: matching.map(nodeShape) }, ttlSeconds: ttl };
  }
  // RFC 2308 §2.1 (NXDOMAIN) / §2.2 (NODATA): the negative answer's TTL is the
  // SOA's in the authority section, min(SOA TTL, SOA MINIMUM) (§5, §3).
  const soa = (reply.authorities ?? []).find((a) => a.type === 'SOA') as dnsPacket.SoaAnswer | undefined;
  const code = rcode === 'NXDOMAIN' ? 'ENOTFOUND' : 'ENODATA';
  if (!soa) return { value: { code } };
  return { value: { code }, ttlSeconds: Math.min(ttl, soa.ttl ?? 0, soa.data.minimum ?? 0) };
}

const norm = (n: string) => n.toLowerCase().replace(/\.$/, '');
const ttlOf = (a: dnsPacket.Answer) => ('ttl' in a ? (a.ttl ?? 0) : 0);

function nodeShape(a: dnsPacket.Answer): unknown {
  switch (a.type) {
    case 'TXT': {
      // One array of character-strings per record (RFC 1035 §3.3.14), bytes as latin1 like node's.
      const parts = (Array.isArray(a.data) ? a.data : [a.data]) as Array<Buffer | string>;
      return parts.map((p) => (typeof p === 'string' ? p : p.toString('latin1')));
    }
    case 'MX': {
      const d = a.data as { preference: number; exchange: string };
      // Node 24 names the type in each MX object, and gives a null MX (RFC 7505) as "".
      return { exchange: d.exchange === '.' ? '' : d.exchange, priority: d.preference, type: 'MX' };
    }
    default:
      return 'data' in a ? a.data : undefined;
  }
}

/** An Error with node's code, syscall and hostname, and no stack (a negative answer is routine). */
function dnsError(code: string, syscall: string, hostname: string): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const err = new Error(`${syscall} ${code} ${hostname}`);
  Error.stackTraceLimit = limit;
  return Object.assign(err, { code, syscall, hostname });
}
