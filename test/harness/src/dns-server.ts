/**
 * A tiny authoritative DNS server on 127.0.0.1 (UDP and TCP, one port) for
 * tests: SPF, DKIM and DMARC records for the filter, MX records for the
 * egress, all answered by a real server that node:dns (c-ares) and mailauth
 * query over the wire, instead of a mocked resolver.
 *
 * Records are given as data; names are matched case-insensitively. A name we
 * know with no record of the asked type answers NOERROR/NODATA, an unknown
 * name NXDOMAIN, and a CNAME is followed within our records. TXT data longer
 * than 255 bytes is split into 255-byte character-strings (RFC 1035 §3.3.14;
 * DKIM keys need this, RFC 6376 §3.6.2.2). A UDP answer larger than the
 * client's buffer (512 bytes, or its EDNS size) is sent truncated so the
 * client retries over TCP (RFC 1035 §4.2.1, RFC 7766).
 *
 * A negative answer (NXDOMAIN, NODATA) carries an SOA in the authority
 * section, as an authoritative server's does (RFC 2308 §3), whose TTL and
 * MINIMUM (`negativeTtl`, default 60 s) give caches the negative TTL
 * (RFC 2308 §5); `negativeTtl: null` leaves it out. Names given to
 * `servfail()` are answered SERVFAIL (a resolver that cannot get an answer).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import * as dnsPacket from 'dns-packet';

export type DnsRecordType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'CNAME';

export type DnsRecord =
  | { name: string; type: 'A' | 'AAAA' | 'CNAME'; data: string; ttl?: number }
  | { name: string; type: 'TXT'; data: string | string[]; ttl?: number }
  | { name: string; type: 'MX'; data: { preference: number; exchange: string } | string; ttl?: number };

export interface DnsQueryLog {
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
}

export interface DnsServer {
  host: string;
  port: number;
  /** "127.0.0.1:port", the form config.dns.servers takes. */
  address: string;
  /** Every question asked, in order. */
  readonly queries: readonly DnsQueryLog[];
  /** Replace the records. */
  set(records: DnsRecord[]): void;
  /** Answer these names SERVFAIL from now on (empty: none). */
  servfail(names: string[]): void;
  stop(): Promise<void>;
}

const NOERROR = 0;
const SERVFAIL = 2;
const NXDOMAIN = 3;
const FORMERR = 1;
const MAX_CNAME_CHAIN = 8;

const norm = (name: string) => name.toLowerCase().replace(/\.$/, '');

/** Split a TXT string into RFC 1035 character-strings of at most 255 bytes. */
export function splitTxt(text: string): Buffer[] {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length === 0) return [Buffer.alloc(0)];
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 255) parts.push(bytes.subarray(i, i + 255));
  return parts;
}

function toAnswer(r: DnsRecord, name: string): dnsPacket.Answer {
  const ttl = r.ttl ?? 60;
  switch (r.type) {
    case 'TXT': {
      const data = (Array.isArray(r.data) ? r.data : [r.data]).flatMap(splitTxt);
      return { type: 'TXT', name, ttl, class: 'IN', data };
    }
    case 'MX': {
      const data = typeof r.data === 'string' ? { preference: 10, exchange: r.data } : r.data;
      return { type: 'MX', name, ttl, class: 'IN', data };
    }
    default:
      return { type: r.type, name, ttl, class: 'IN', data: r.data };
  }
}

export interface AnswerOptions {
  /** TTL and MINIMUM of the SOA sent with negative answers, seconds; null: no SOA. */
  negativeTtl?: number | null;
  /** Names answered SERVFAIL. */
  servfail?: ReadonlySet<string>;
}

/** The SOA of a negative answer (RFC 2308 §3), owned by the name's last label (the harness' "zone"). */
function negativeSoa(name: string, ttl: number): dnsPacket.Answer {
  const zone = norm(name).split('.').pop() || '.';
  const data = {
    mname: `ns.${zone}`,
    rname: `hostmaster.${zone}`,
    serial: 1,
    refresh: 3600,
    retry: 600,
    expire: 86400,
    minimum: ttl,
  };
  return { type: 'SOA', name: zone, ttl, class: 'IN', data };
}

/** Build the answer packet for a query against the records. Exported for unit tests. */
export function answerQuery(
  query: dnsPacket.DecodedPacket,
  records: readonly DnsRecord[],
  opts: AnswerOptions = {},
): dnsPacket.Packet {
  const q = query.questions?.[0];
  const rd = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  const base = { type: 'response' as const, id: query.id ?? 0, questions: query.questions ?? [] };
  if (!q) return { ...base, flags: FORMERR };
  if (opts.servfail?.has(norm(q.name))) return { ...base, flags: rd | SERVFAIL };
  const negativeTtl = opts.negativeTtl === undefined ? 60 : opts.negativeTtl;
  const authorities = (name: string) => (negativeTtl === null ? [] : [negativeSoa(name, negativeTtl)]);
  const answers: dnsPacket.Answer[] = [];
  let owner = q.name;
  let name = norm(owner);
  for (let hops = 0; hops < MAX_CNAME_CHAIN; hops++) {
    const atName = records.filter((r) => norm(r.name) === name);
    if (atName.length === 0) {
      // Unknown name: NXDOMAIN (after a CNAME, the chain's answers are kept).
      return {
        ...base,
        flags: dnsPacket.AUTHORITATIVE_ANSWER | rd | NXDOMAIN,
        answers,
        authorities: authorities(name),
      };
    }
    const exact = atName.filter((r) => r.type === q.type);
    if (exact.length > 0) {
      answers.push(...exact.map((r) => toAnswer(r, owner)));
      break;
    }
    const cname = atName.find((r) => r.type === 'CNAME');
    if (!cname || q.type === 'CNAME') {
      // NODATA (RFC 2308 §2.2): NOERROR, no answer of the type, the SOA for the negative TTL.
      return {
        ...base,
        flags: dnsPacket.AUTHORITATIVE_ANSWER | rd | NOERROR,
        answers,
        authorities: authorities(name),
      };
    }
    answers.push(toAnswer(cname, owner));
    owner = cname.data as string;
    name = norm(owner);
  }
  return { ...base, flags: dnsPacket.AUTHORITATIVE_ANSWER | rd | NOERROR, answers };
}

/** The UDP payload size the client can take: its EDNS(0) size (RFC 6891 §6.2.5), else 512. */
function udpLimit(query: dnsPacket.DecodedPacket): number {
  const opt = query.additionals?.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer | undefined;
  return opt ? Math.max(512, Math.min(opt.udpPayloadSize, 4096)) : 512;
}

export async function startDnsServer(
  initial: DnsRecord[] = [],
  opts: { port?: number; negativeTtl?: number | null } = {},
): Promise<DnsServer> {
  let records = [...initial];
  const answerOpts: AnswerOptions = { negativeTtl: opts.negativeTtl, servfail: new Set<string>() };
  const queries: DnsQueryLog[] = [];
  const host = '127.0.0.1';

  const log = (query: dnsPacket.DecodedPacket, transport: 'udp' | 'tcp') => {
    const q = query.questions?.[0];
    if (q) queries.push({ name: q.name, type: q.type, transport });
  };

  const tcp: Server = createServer((sock) => serveTcp(sock));
  const sockets = new Set<TcpSocket>();
  const serveTcp = (sock: TcpSocket) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      // RFC 1035 §4.2.2: each message is preceded by a two-byte length.
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        let query: dnsPacket.DecodedPacket;
        try {
          query = dnsPacket.decode(msg);
        } catch {
          sock.destroy();
          return;
        }
        log(query, 'tcp');
        sock.write(dnsPacket.streamEncode(answerQuery(query, records, answerOpts)));
      }
    });
  };

  const { port, udp } = await bindBoth(tcp, host, opts.port ?? 0);
  udp.on('error', () => {}); // a failed send to a vanished client is not the test's business
  udp.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    log(query, 'udp');
    const response = answerQuery(query, records, answerOpts);
    let out = dnsPacket.encode(response);
    if (out.length > udpLimit(query)) {
      // RFC 1035 §4.2.1: too big for UDP: say so (TC) and let the client ask over TCP.
      out = dnsPacket.encode({
        ...response,
        flags: (response.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE,
        answers: [],
      });
    }
    udp.send(out, rinfo.port, rinfo.address);
  });

  return {
    host,
    port,
    address: `${host}:${port}`,
    queries,
    set(next) {
      records = [...next];
    },
    servfail(names) {
      answerOpts.servfail = new Set(names.map(norm));
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => tcp.close(() => resolve())),
        new Promise<void>((resolve) => udp.close(() => resolve())),
      ]);
    },
  };
}

/**
 * One port for both transports: bind TCP (port 0 = any free one), then UDP on
 * the same number. If that UDP port is taken, try another TCP port.
 */
async function bindBoth(tcp: Server, host: string, wanted: number): Promise<{ port: number; udp: Socket }> {
  for (let attempt = 0; ; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(wanted, host, () => {
        tcp.off('error', reject);
        const addr = tcp.address();
        resolve(typeof addr === 'object' && addr ? addr.port : 0);
      });
    });
    const udp = createSocket('udp4');
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      return { port, udp };
    } catch (err) {
      try {
        udp.close();
      } catch {
        // never bound: nothing to close
      }
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      if (wanted !== 0 || attempt >= 5) throw err;
    }
  }
}
