/**
 * A DNS stub client that reports DNSSEC status: what DANE (RFC 7672) and
 * MTA-STS need and node:dns cannot give (c-ares hides the header's AD bit).
 *
 * It trusts ONE configured validating resolver (egress.dnsResolver): the
 * resolver checks the signatures; we read its verdict from the AD bit
 * (RFC 4035 §3.2.3, RFC 6840 §5.7: we set AD and DO in the query to ask for
 * it). The path to that resolver must itself be trusted (loopback or a
 * local network), as RFC 7672 §2.1 and RFC 4033 §4 note for stub resolvers.
 *
 * Answers: { rcode, secure, records }. A validating resolver answers a
 * bogus (badly signed) response with SERVFAIL (RFC 4035 §5.5): callers must
 * treat 'servfail' and 'timeout' as "cannot tell", never as "no records".
 *
 * Transport: dns-exchange.ts (UDP with EDNS(0), TCP when truncated, one
 * overall timeout per query), asking with DO and AD set.
 */
import type * as dnsPacket from 'dns-packet';
import { type DnsServerAddress, exchange, parseResolverAddress } from './dns-exchange.ts';

export type DnsRcode = 'noerror' | 'nxdomain' | 'servfail' | 'timeout' | 'error';

export interface DnsAnswer<T> {
  rcode: DnsRcode;
  /** The validating resolver set AD: every record in the answer (or the denial) is DNSSEC-validated. */
  secure: boolean;
  records: T[];
  /** Human-readable detail for logs and replies when rcode is not noerror/nxdomain. */
  detail?: string;
}

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

export type MxAnswer = DnsAnswer<{ exchange: string; priority: number }>;
export type AddressAnswer = DnsAnswer<string> & {
  /**
   * The name the addresses belong to when `host` is an alias: the target of
   * the CNAME chain in the answer (RFC 7672 §2.2.2: the expanded TLSA base
   * domain). Absent when there was no CNAME.
   */
  canonical?: string;
};
export type TlsaAnswer = DnsAnswer<TlsaRecord>;

export interface SecureDns {
  mx(domain: string): Promise<MxAnswer>;
  /** AAAA then A; secure only if both answers were. */
  addresses(host: string): Promise<AddressAnswer>;
  tlsa(name: string): Promise<TlsaAnswer>;
  txt(name: string): Promise<DnsAnswer<string>>;
}

interface RawAnswer {
  rcode: DnsRcode;
  secure: boolean;
  answers: dnsPacket.Answer[];
  detail?: string;
}

export { parseResolverAddress };

export function createSecureDns(cfg: { resolver: string; timeoutMs: number }): SecureDns {
  const server = parseResolverAddress(cfg.resolver);
  const ask = (name: string, type: dnsPacket.RecordType) => query(server, name, type, cfg.timeoutMs);
  const strip = (n: string) => n.replace(/\.$/, '');
  return {
    async mx(domain) {
      const a = await ask(domain, 'MX');
      const records = a.answers
        .filter(
          (r): r is dnsPacket.StringAnswer & { data: { preference: number; exchange: string } } =>
            r.type === 'MX',
        )
        .map((r) => {
          const d = r.data as unknown as { preference: number; exchange: string };
          return { exchange: strip(d.exchange), priority: d.preference };
        });
      return { rcode: a.rcode, secure: a.secure, records, detail: a.detail };
    },
    async addresses(name) {
      const [v6, v4] = await Promise.all([ask(name, 'AAAA'), ask(name, 'A')]);
      const records = [...v6.answers, ...v4.answers].flatMap((r) =>
        r.type === 'A' || r.type === 'AAAA' ? [String(r.data)] : [],
      );
      const bad = [v6, v4].find((x) => x.rcode !== 'noerror' && x.rcode !== 'nxdomain');
      const canonical = cnameTarget(name, [...v4.answers, ...v6.answers]);
      return {
        rcode: records.length > 0 ? 'noerror' : (bad?.rcode ?? v4.rcode),
        secure: v6.secure && v4.secure,
        records,
        detail: bad?.detail,
        ...(canonical ? { canonical } : {}),
      };
    },
    async tlsa(name) {
      const a = await ask(name, 'TLSA');
      const records = a.answers
        .filter((r) => r.type === 'TLSA')
        .map((r) => {
          const d = r.data as { usage: number; selector: number; matchingType: number; certificate: Buffer };
          return { usage: d.usage, selector: d.selector, matchingType: d.matchingType, data: d.certificate };
        });
      return { rcode: a.rcode, secure: a.secure, records, detail: a.detail };
    },
    async txt(name) {
      const a = await ask(name, 'TXT');
      const records = a.answers
        .filter((r) => r.type === 'TXT')
        .map((r) => {
          const parts = (Array.isArray(r.data) ? r.data : [r.data]) as Array<Buffer | string>;
          // RFC 7208 §3.3 / RFC 8461 §3.1: the character-strings of one record are concatenated.
          return parts.map((p) => (typeof p === 'string' ? p : p.toString('utf8'))).join('');
        });
      return { rcode: a.rcode, secure: a.secure, records, detail: a.detail };
    },
  };
}

/** The end of the CNAME chain starting at `name` in an answer section, or undefined without one. */
export function cnameTarget(name: string, answers: readonly dnsPacket.Answer[]): string | undefined {
  const norm = (n: string) => n.toLowerCase().replace(/\.$/, '');
  let current = norm(name);
  for (let hops = 0; hops < 16; hops++) {
    const link = answers.find((a) => a.type === 'CNAME' && norm(a.name) === current);
    if (!link) break;
    current = norm(String((link as dnsPacket.StringAnswer).data));
  }
  return current === norm(name) ? undefined : current;
}

function rcodeOf(p: dnsPacket.DecodedPacket): DnsRcode {
  const rc = (p as { rcode?: string }).rcode;
  if (rc === 'NOERROR') return 'noerror';
  if (rc === 'NXDOMAIN') return 'nxdomain';
  if (rc === 'SERVFAIL') return 'servfail';
  return 'error';
}

async function query(
  server: DnsServerAddress,
  name: string,
  type: dnsPacket.RecordType,
  timeoutMs: number,
): Promise<RawAnswer> {
  try {
    const reply = await exchange(server, name, type, { timeoutMs, dnssec: true });
    return {
      rcode: rcodeOf(reply),
      secure: reply.flag_ad === true,
      answers: reply.answers ?? [],
      detail: rcodeOf(reply) === 'servfail' ? `SERVFAIL for ${name}/${type}` : undefined,
    };
  } catch (err) {
    const timeout = (err as { code?: string }).code === 'ETIMEOUT';
    return {
      rcode: timeout ? 'timeout' : 'error',
      secure: false,
      answers: [],
      detail: `${name}/${type}: ${(err as Error).message}`,
    };
  }
}
