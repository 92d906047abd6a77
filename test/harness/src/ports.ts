/**
 * Free TCP ports on 127.0.0.1 for servers that cannot be told "port 0" (a
 * NATS cluster's routes, an embedded nats-server or an MX port written in a
 * config file). The port is chosen at random BELOW the kernel's ephemeral
 * range (net.ipv4.ip_local_port_range, 32768-60999 by default), so no other
 * process binding port 0 — nats-server -1, smtp-server 0, any client socket —
 * can be handed it between our check and our server's bind; only two callers
 * drawing the same random port could collide, and the check below makes even
 * that a retry rather than a failure.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOWEST = 20_000;

function ephemeralStart(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const n = Number(low);
    return Number.isInteger(n) && n > LOWEST + 1000 ? n : 32_768;
  } catch {
    return 32_768;
  }
}

const HIGHEST = ephemeralStart() - 1;
const handedOut = new Set<number>();

function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (HIGHEST - LOWEST + 1));
    if (handedOut.has(port)) continue;
    if (await canBind(port, host)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port found between ${LOWEST} and ${HIGHEST} on ${host}`);
}
