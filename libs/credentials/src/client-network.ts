/**
 * The network a failure is counted against: an IPv4 address itself, an IPv6
 * address's /64 (one subscriber usually holds a whole /64, so counting single
 * IPv6 addresses would let an attacker rotate through 2^64 of them; RFC 6177
 * and RFC 7421 §2 on /64 as the end-site unit). IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d, how a dual-stack listener reports IPv4 clients) count as
 * the IPv4 address.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** Expand an IPv6 address to its eight 16-bit groups. */
function ipv6Groups(ip: string): number[] {
  let s = ip.split('%')[0]!;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    s = `${s.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => Number.parseInt(g, 16));
}

export function clientNetwork(ip: string): string {
  const bare = ip.trim();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1]!;
  if (isIPv4(bare)) return bare;
  if (isIPv6(bare.split('%')[0]!)) {
    const g = ipv6Groups(bare);
    return `${g
      .slice(0, 4)
      .map((x) => x.toString(16))
      .join(':')}::/64`;
  }
  return bare.toLowerCase();
}
