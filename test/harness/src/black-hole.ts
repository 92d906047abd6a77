/**
 * A black-holed mail host: a TCP listener on 127.0.0.1 that accepts every
 * connection and never says a word (no greeting), as a host behind a broken
 * firewall or a tarpit does. The egress' greeting timeout and its delivery
 * queue are what stand between such a host and every other destination.
 * It counts connections: how many are open now, the most open at once, and
 * how many it has seen in all, with the time each arrived.
 */
import { createServer, type Socket } from 'node:net';

export interface BlackHole {
  port: number;
  /** Connections open now. */
  readonly open: number;
  /** The most connections open at once so far. */
  readonly maxOpen: number;
  /** When each connection arrived (ms since the epoch), in order. */
  readonly arrivals: readonly number[];
  /** Connections the client closed (gave up on the greeting). */
  readonly closed: number;
  stop(): Promise<void>;
}

export async function startBlackHole(): Promise<BlackHole> {
  const sockets = new Set<Socket>();
  const arrivals: number[] = [];
  let maxOpen = 0;
  let closed = 0;
  const server = createServer((socket) => {
    arrivals.push(Date.now());
    sockets.add(socket);
    maxOpen = Math.max(maxOpen, sockets.size);
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      closed++;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('black hole: no port');
  return {
    port: address.port,
    get open() {
      return sockets.size;
    },
    get maxOpen() {
      return maxOpen;
    },
    arrivals,
    get closed() {
      return closed;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
