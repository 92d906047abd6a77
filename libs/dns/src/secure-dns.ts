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
 * Transport: UDP with EDNS(0) (RFC 6891, 1232-byte payload per the DNS flag
 * day advice), retried over TCP when the answer is truncated (TC,
 * RFC 7766 §5); one overall timeout per query.
 */
import { createSocket } from 'node:dgram';
import { isIP, Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';

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

/** "host:port" or "host" (port 53); IPv6 as "[::1]:53". */
export function parseResolverAddress(address: string): { host: string; port: number } {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(address);
  if (bracket) return { host: bracket[1]!, port: Number(bracket[2] ?? 53) };
  if (isIP(address) === 6) return { host: address, port: 53 };
  const [host, port] = address.split(':');
  return { host: host!, port: Number(port ?? 53) };
}

export function createSecureDns(cfg: { resolver: string; timeoutMs: number }): SecureDns {
  const { host, port } = parseResolverAddress(cfg.resolver);
  const ask = (name: string, type: dnsPacket.RecordType) => query(host, port, name, type, cfg.timeoutMs);
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

function buildQuery(id: number, name: string, type: dnsPacket.RecordType): dnsPacket.Packet {
  return {
    type: 'query',
    id,
    // RD: we ask a recursive resolver; AD in a query asks for AD in the reply (RFC 6840 §5.7).
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
    questions: [{ type, name, class: 'IN' }],
    // DO (RFC 3225): we understand DNSSEC.
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 1232,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: dnsPacket.DNSSEC_OK,
        flag_do: true,
        options: [],
      },
    ],
  };
}

async function query(
  host: string,
  port: number,
  name: string,
  type: dnsPacket.RecordType,
  timeoutMs: number,
): Promise<RawAnswer> {
  const deadline = Date.now() + timeoutMs;
  const id = Math.floor(Math.random() * 65536);
  const packet = buildQuery(id, name, type);
  try {
    let reply = await overUdp(host, port, packet, id, timeoutMs);
    // RFC 7766 §5: a truncated UDP answer is asked again over TCP.
    if (reply.flag_tc) reply = await overTcp(host, port, packet, id, Math.max(1, deadline - Date.now()));
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

const timeoutError = (ms: number) =>
  Object.assign(new Error(`no DNS answer within ${ms} ms`), { code: 'ETIMEOUT' });

function overUdp(
  host: string,
  port: number,
  packet: dnsPacket.Packet,
  id: number,
  timeoutMs: number,
): Promise<dnsPacket.DecodedPacket> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done(timeoutError(timeoutMs)), timeoutMs);
    const done = (err: Error | null, p?: dnsPacket.DecodedPacket) => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(p!);
    };
    sock.on('error', (err) => done(err));
    sock.on('message', (msg) => {
      try {
        const p = dnsPacket.decode(msg);
        if (p.id === id) done(null, p); // anything else is not our answer (spoofing, RFC 5452)
      } catch {
        /* not a DNS message: keep waiting */
      }
    });
    sock.send(dnsPacket.encode(packet), port, host, (err) => {
      if (err) done(err);
    });
  });
}

function overTcp(
  host: string,
  port: number,
  packet: dnsPacket.Packet,
  id: number,
  timeoutMs: number,
): Promise<dnsPacket.DecodedPacket> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    const timer = setTimeout(() => done(timeoutError(timeoutMs)), timeoutMs);
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, p?: dnsPacket.DecodedPacket) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(p!);
    };
    sock.on('error', (err) => done(err));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      // RFC 1035 §4.2.2: two-byte length prefix.
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        try {
          const p = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          if (p.id !== id) return done(new Error('DNS answer over TCP with a foreign id'));
          done(null, p);
        } catch (err) {
          done(err as Error);
        }
      }
    });
    sock.connect(port, host, () => sock.write(dnsPacket.streamEncode(packet)));
  });
}
