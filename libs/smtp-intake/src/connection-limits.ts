/**
 * Admission of a new connection: how many sessions one client address, its
 * network (IPv4 /24, IPv6 /64: what one customer or one provider's NAT
 * usually holds) and everyone together may hold at once. Without this, one
 * client can open every slot of the MX and starve the rest.
 *
 * Counts live in this process only: with N replicas a client can hold N
 * times the limit, which still keeps it from starving others on any one
 * replica. Trusted networks (ingress.trustedNetworks) are not counted per
 * client, only in the total.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export interface ConnectionLimitsConfig {
  total: number;
  perIp: number;
  perNet: number;
}

export type Admission = { ok: true; release: () => void } | { ok: false; scope: 'total' | 'ip' | 'net' };

/** The /24 of an IPv4 address or the /64 of an IPv6 address, as a map key. */
export function networkOf(ip: string): string {
  if (isIPv4(ip)) return `${ip.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIPv6(ip)) {
    const [head = '', tail = ''] = ip.toLowerCase().split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
    return `${groups
      .slice(0, 4)
      .map((g) => g.replace(/^0+(?=.)/, ''))
      .join(':')}::/64`;
  }
  return ip;
}

/** A CIDR list ("10.0.0.0/8", "2001:db8::/32", or a bare address) as a matcher. */
export function cidrMatcher(cidrs: string[], key: string): (ip: string) => boolean {
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr = '', bits] = c.split('/');
    const type = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : undefined;
    const prefix = bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits);
    if (!type || !Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128)) {
      throw new Error(`${key}: "${c}" is not an address or CIDR (e.g. 10.0.0.0/8 or 2001:db8::/32)`);
    }
    list.addSubnet(addr, prefix, type);
  }
  return (ip) => {
    const type = isIPv4(ip) ? 'ipv4' : isIPv6(ip) ? 'ipv6' : undefined;
    return type ? list.check(ip, type) : false;
  };
}

export class ConnectionLimits {
  private total = 0;
  private readonly perIp = new Map<string, number>();
  private readonly perNet = new Map<string, number>();

  private readonly config: ConnectionLimitsConfig;
  private readonly trusted: (ip: string) => boolean;

  constructor(config: ConnectionLimitsConfig, trusted: (ip: string) => boolean = () => false) {
    this.config = config;
    this.trusted = trusted;
  }

  admit(ip: string): Admission {
    if (this.total >= this.config.total) return { ok: false, scope: 'total' };
    const counted = !this.trusted(ip);
    const net = networkOf(ip);
    if (counted) {
      if ((this.perIp.get(ip) ?? 0) >= this.config.perIp) return { ok: false, scope: 'ip' };
      if ((this.perNet.get(net) ?? 0) >= this.config.perNet) return { ok: false, scope: 'net' };
      bump(this.perIp, ip, 1);
      bump(this.perNet, net, 1);
    }
    this.total++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        if (counted) {
          bump(this.perIp, ip, -1);
          bump(this.perNet, net, -1);
        }
      },
    };
  }

  get size(): number {
    return this.total;
  }
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const n = (map.get(key) ?? 0) + by;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}
