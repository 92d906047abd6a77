/**
 * Where to connect for a part: the candidate hosts, in the order to try
 * them, or a decision that there is nowhere to deliver.
 *
 * A route of kind "smtp" (transport or relay) is that host and port; its name
 * is resolved when connecting (the system resolver, so internal names in
 * /etc/hosts or Kubernetes service DNS work). A route of kind "mx" follows
 * RFC 5321 §5.1 through the configured DNS servers (config.dns):
 *   - MX records sorted by preference, equal preferences in random order
 *     (§5.1: spread the load), each exchange's AAAA then A addresses;
 *   - no MX records (NODATA): the domain itself is the implicit MX;
 *   - a null MX (a single MX whose exchange is ".", RFC 7505 §3) means the
 *     domain accepts no mail: permanent failure, 556 5.1.10 (RFC 7504);
 *     a "." among real MX records is ignored (RFC 7505 §3 forbids the mix);
 *   - NXDOMAIN: permanent failure; any other DNS error: temporary.
 * At most MAX_CANDIDATES addresses are tried per attempt (Postfix
 * smtp_mx_address_limit is 5); the egress moves to the next one only when
 * it cannot open a session with the current one.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Route } from '@sluice/proto';
import { localReplies } from './local-replies.ts';

export const MAX_CANDIDATES = 5;
/** RFC 5321 §4.5.4.1 / IANA: SMTP between MTAs uses port 25. */
export const SMTP_PORT = 25;

export interface MxRecord {
  exchange: string;
  priority: number;
}

/** The DNS questions the egress asks. Errors carry node:dns codes (ENODATA, ENOTFOUND, ETIMEOUT, ...). */
export interface DnsLookup {
  resolveMx(domain: string): Promise<MxRecord[]>;
  /** AAAA and A addresses of a host; [] when it has none; throws only when DNS itself failed. */
  resolveAddresses(host: string): Promise<string[]>;
}

export interface Candidate {
  /** Host name or IP to connect to. */
  host: string;
  port: number;
  /** The MX host name, for TLS SNI and the timeline, when `host` is an address. */
  servername?: string;
  lmtp: boolean;
  /** "mx1.example.net[192.0.2.1]:25" or "host:port", for events and logs. */
  label: string;
}

export type DestinationPlan =
  | { kind: 'candidates'; candidates: Candidate[] }
  | { kind: 'unroutable'; permanent: boolean; reply: string };

export interface DestinationOptions {
  /** Port for MX hosts (25; tests point it at a sink). */
  mxPort?: number;
  maxCandidates?: number;
  /** Random source for ordering equal MX preferences (injectable for tests). */
  random?: () => number;
}

const dnsCode = (err: unknown): string => {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : 'ERROR';
};

export async function destinationFor(
  route: Route,
  dns: DnsLookup,
  opts: DestinationOptions = {},
): Promise<DestinationPlan> {
  if (route.kind === 'smtp') {
    return {
      kind: 'candidates',
      candidates: [
        { host: route.host, port: route.port, lmtp: route.lmtp, label: `${route.host}:${route.port}` },
      ],
    };
  }
  const domain = route.domain;
  const port = opts.mxPort ?? SMTP_PORT;
  const max = opts.maxCandidates ?? MAX_CANDIDATES;

  let exchanges: string[];
  try {
    const records = await dns.resolveMx(domain);
    const real = records.filter((r) => !isNullExchange(r.exchange));
    if (records.length > 0 && real.length === 0) {
      return { kind: 'unroutable', permanent: true, reply: localReplies.nullMx(domain) };
    }
    exchanges = orderByPreference(real, opts.random ?? Math.random).map((r) => r.exchange.replace(/\.$/, ''));
    if (exchanges.length === 0) exchanges = [domain];
  } catch (err) {
    const code = dnsCode(err);
    if (code === 'ENOTFOUND')
      return { kind: 'unroutable', permanent: true, reply: localReplies.noSuchDomain(domain) };
    if (code !== 'ENODATA') {
      return {
        kind: 'unroutable',
        permanent: false,
        reply: localReplies.dnsFailure(`MX of ${domain}`, code),
      };
    }
    // RFC 5321 §5.1: no MX records: the domain is its own (implicit) MX.
    exchanges = [domain];
  }
  const implicit = exchanges.length === 1 && exchanges[0] === domain;

  const candidates: Candidate[] = [];
  let lastError: string | undefined;
  for (const exchange of exchanges) {
    if (candidates.length >= max) break;
    let addresses: string[];
    if (isIP(exchange)) {
      addresses = [exchange];
    } else {
      try {
        addresses = await dns.resolveAddresses(exchange);
      } catch (err) {
        lastError = dnsCode(err);
        continue;
      }
    }
    for (const address of addresses) {
      if (candidates.length >= max) break;
      candidates.push({
        host: address,
        port,
        servername: isIP(exchange) ? undefined : exchange,
        lmtp: false,
        label: `${exchange}[${address}]:${port}`,
      });
    }
  }
  if (candidates.length > 0) return { kind: 'candidates', candidates };
  if (lastError) {
    return {
      kind: 'unroutable',
      permanent: false,
      reply: localReplies.dnsFailure(`mail hosts of ${domain}`, lastError),
    };
  }
  if (implicit) return { kind: 'unroutable', permanent: true, reply: localReplies.noMailHost(domain) };
  return { kind: 'unroutable', permanent: false, reply: localReplies.noAddress(domain) };
}

/** RFC 7505 §3: the null MX is preference 0 with the root as exchange ("." or "" as resolvers return it). */
function isNullExchange(exchange: string): boolean {
  return exchange === '' || exchange === '.';
}

/** Ascending preference; equal preferences shuffled (RFC 5321 §5.1). */
function orderByPreference(records: MxRecord[], random: () => number): MxRecord[] {
  const keyed = records.map((r) => ({ r, tie: random() }));
  keyed.sort((a, b) => a.r.priority - b.r.priority || a.tie - b.tie);
  return keyed.map((k) => k.r);
}

/** A DnsLookup over node:dns with the configured servers ("ip" or "ip:port") and per-query timeout. */
export function createDnsLookup(cfg: { servers: readonly string[]; timeout: number }): DnsLookup {
  const resolver = new Resolver({ timeout: Math.max(1, Math.round(cfg.timeout * 1000)), tries: 2 });
  if (cfg.servers.length > 0) resolver.setServers([...cfg.servers]);
  const addressesOf = async (
    query: () => Promise<string[]>,
  ): Promise<{ list: string[]; error?: unknown }> => {
    try {
      return { list: await query() };
    } catch (err) {
      const code = dnsCode(err);
      if (code === 'ENODATA' || code === 'ENOTFOUND') return { list: [] };
      return { list: [], error: err };
    }
  };
  return {
    resolveMx: (domain) => resolver.resolveMx(domain),
    async resolveAddresses(host) {
      const [v6, v4] = await Promise.all([
        addressesOf(() => resolver.resolve6(host)),
        addressesOf(() => resolver.resolve4(host)),
      ]);
      const list = [...v6.list, ...v4.list];
      const error = v6.error ?? v4.error;
      if (list.length === 0 && error) throw error;
      return list;
    },
  };
}
