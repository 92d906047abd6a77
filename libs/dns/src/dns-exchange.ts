/**
 * One DNS question asked of one server and the decoded reply: the transport
 * both of our stub clients share (secure-dns.ts for DANE/MTA-STS, and the
 * filter's caching resolver, which needs the TTLs and the authority
 * section's SOA that node:dns / c-ares do not give).
 *
 * Transport: UDP with EDNS(0) (RFC 6891, 1232-byte payload per the DNS flag
 * day advice), asked again over TCP when the answer is truncated (TC,
 * RFC 1035 §4.2.1, RFC 7766 §5); one overall timeout for both.
 *
 * Every query uses a fresh UDP socket, so a fresh random source port, and an
 * unpredictable 16-bit id (crypto.randomInt), and only a reply from the
 * server's address with that id and our question is taken: the defences
 * against forged answers of RFC 5452 §9, as c-ares does. The socket is connect()ed, so the kernel drops datagrams from other
 * sources and a closed port comes back as ECONNREFUSED at once (ICMP)
 * instead of a timeout.
 *
 * Failures reject with an Error whose `code` is node:dns's: ETIMEOUT when no
 * answer came in time, ECONNREFUSED, or the socket's own error code.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIP, Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';

export interface DnsServerAddress {
  host: string;
  port: number;
}

export interface ExchangeOptions {
  /** The whole exchange, UDP and a TCP retry together, in milliseconds. */
  timeoutMs: number;
  /** Set DO and AD (we want the validating resolver's AD verdict, RFC 3225, RFC 6840 §5.7). */
  dnssec: boolean;
}

/** "host:port" or "host" (port 53); IPv6 as "[::1]:53". */
export function parseResolverAddress(address: string): DnsServerAddress {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(address);
  if (bracket) return { host: bracket[1]!, port: Number(bracket[2] ?? 53) };
  if (isIP(address) === 6) return { host: address, port: 53 };
  const [host, port] = address.split(':');
  return { host: host!, port: Number(port ?? 53) };
}

export function buildQuery(
  id: number,
  name: string,
  type: dnsPacket.RecordType,
  dnssec: boolean,
): dnsPacket.Packet {
  return {
    type: 'query',
    id,
    // RD: we ask a recursive resolver; AD in a query asks for AD in the reply (RFC 6840 §5.7).
    flags: dnsPacket.RECURSION_DESIRED | (dnssec ? dnsPacket.AUTHENTIC_DATA : 0),
    questions: [{ type, name, class: 'IN' }],
    // EDNS(0) (RFC 6891); DO (RFC 3225) only when we understand DNSSEC: it makes answers carry RRSIGs.
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 1232,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: dnssec ? dnsPacket.DNSSEC_OK : 0,
        flag_do: dnssec,
        options: [],
      },
    ],
  };
}

/** Ask `server` one question: UDP first, TCP when the UDP answer is truncated. */
export async function exchange(
  server: DnsServerAddress,
  name: string,
  type: dnsPacket.RecordType,
  opts: ExchangeOptions,
): Promise<dnsPacket.DecodedPacket> {
  const deadline = Date.now() + opts.timeoutMs;
  const id = randomInt(65536);
  const packet = buildQuery(id, name, type, opts.dnssec);
  const wire = dnsPacket.encode(packet); // throws here, not in a socket callback, for a name it cannot encode
  const reply = await overUdp(server, wire, id, { name, type }, opts.timeoutMs);
  // RFC 7766 §5: a truncated UDP answer is asked again over TCP.
  if (reply.flag_tc) return overTcp(server, packet, id, Math.max(1, deadline - Date.now()));
  return reply;
}

export function timeoutError(ms: number): Error & { code: string } {
  return Object.assign(new Error(`no DNS answer within ${ms} ms`), { code: 'ETIMEOUT' });
}

/** The reply's question is ours (names compare case-insensitively, RFC 4343). */
function sameQuestion(p: dnsPacket.DecodedPacket, q: { name: string; type: string }): boolean {
  const asked = p.questions?.[0];
  if (!asked) return false;
  const norm = (n: string) => n.toLowerCase().replace(/\.$/, '');
  return asked.type === q.type && norm(asked.name) === norm(q.name);
}

function overUdp(
  server: DnsServerAddress,
  wire: Buffer,
  id: number,
  question: { name: string; type: string },
  timeoutMs: number,
): Promise<dnsPacket.DecodedPacket> {
  return new Promise((resolve, reject) => {
    // Binding happens on connect: the kernel picks a fresh random ephemeral port (RFC 5452 §9.2).
    const sock = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done(timeoutError(timeoutMs)), timeoutMs);
    let closed = false;
    const done = (err: Error | null, p?: dnsPacket.DecodedPacket) => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(p!);
    };
    sock.on('error', (err) => done(err));
    sock.on('message', (msg) => {
      try {
        const p = dnsPacket.decode(msg);
        // Anything else is not our answer (RFC 5452 §9.1: id and question must match).
        if (p.id === id && sameQuestion(p, question)) done(null, p);
      } catch {
        /* not a DNS message: keep waiting */
      }
    });
    sock.connect(server.port, server.host, (err?: Error) => {
      if (err) return done(err);
      sock.send(wire, (sendErr) => {
        if (sendErr) done(sendErr);
      });
    });
  });
}

function overTcp(
  server: DnsServerAddress,
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
    sock.connect(server.port, server.host, () => sock.write(dnsPacket.streamEncode(packet)));
  });
}
