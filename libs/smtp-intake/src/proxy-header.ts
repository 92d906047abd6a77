/**
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2)
 * a load balancer sends before the SMTP session, naming the real client.
 * Only connections from ingress.proxyFrom are read this way: from anyone
 * else the header would let a client choose its own address. Parsed here,
 * before smtp-server sees the socket (smtp-server reads v1 only); bytes after
 * the header are put back for the SMTP parser.
 */
import type { Socket } from 'node:net';

export interface ProxiedAddress {
  /** undefined: a LOCAL (v2) or UNKNOWN (v1) header, the connection's own address stands. */
  remoteAddress?: string;
  remotePort?: number;
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** proxy-protocol.txt §2.1: a v1 line is at most 107 bytes including CRLF. */
const V1_MAX = 107;

type Parsed = { done: false } | { done: true; header: ProxiedAddress; used: number } | { error: string };

/** Parse a header at the start of `buf`; `done: false` while more bytes are needed. */
export function parseProxyHeader(buf: Buffer): Parsed {
  const sig = buf.subarray(0, Math.min(buf.length, 12));
  if (V2_SIGNATURE.subarray(0, sig.length).equals(sig)) {
    if (buf.length < 16) return { done: false };
    const verCmd = buf[12]!;
    if (verCmd >> 4 !== 2) return { error: 'PROXY v2: unsupported version' };
    const len = buf.readUInt16BE(14);
    if (buf.length < 16 + len) return { done: false };
    const used = 16 + len;
    const cmd = verCmd & 0x0f;
    if (cmd === 0) return { done: true, header: {}, used }; // LOCAL: health check of the balancer
    if (cmd !== 1) return { error: 'PROXY v2: unknown command' };
    const fam = buf[13]! >> 4;
    const body = buf.subarray(16, used);
    if (fam === 1 && len >= 12) {
      return {
        done: true,
        header: { remoteAddress: [...body.subarray(0, 4)].join('.'), remotePort: body.readUInt16BE(8) },
        used,
      };
    }
    if (fam === 2 && len >= 36) {
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
      return {
        done: true,
        header: { remoteAddress: groups.join(':'), remotePort: body.readUInt16BE(32) },
        used,
      };
    }
    if (fam === 0) return { done: true, header: {}, used }; // AF_UNSPEC
    return { error: 'PROXY v2: unsupported address family' };
  }
  const prefix = 'PROXY '.slice(0, Math.min(buf.length, 6));
  if (buf.subarray(0, prefix.length).toString('latin1') !== prefix) return { error: 'no PROXY header' };
  const end = buf.indexOf('\r\n');
  if (end < 0) return buf.length >= V1_MAX ? { error: 'PROXY v1: line too long' } : { done: false };
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  const used = end + 2;
  if (parts[1] === 'UNKNOWN') return { done: true, header: {}, used };
  if ((parts[1] !== 'TCP4' && parts[1] !== 'TCP6') || parts.length !== 6) {
    return { error: 'PROXY v1: malformed line' };
  }
  const port = Number(parts[4]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return { error: 'PROXY v1: bad port' };
  return { done: true, header: { remoteAddress: parts[2]!, remotePort: port }, used };
}

/** Read the header off `socket` (bounded by `timeoutMs`); the rest stays in the socket. */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxiedAddress> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const finish = (err?: Error, header?: ProxiedAddress) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      if (err) reject(err);
      else resolve(header!);
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const r = parseProxyHeader(buf);
      if ('error' in r) return finish(new Error(r.error));
      if (!r.done) return;
      const rest = buf.subarray(r.used);
      finish(undefined, r.header);
      if (rest.length) socket.unshift(rest);
    };
    const onClose = () => finish(new Error('closed before the PROXY header'));
    const timer = setTimeout(() => finish(new Error('no PROXY header in time')), timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}
