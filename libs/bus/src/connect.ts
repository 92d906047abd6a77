/**
 * Opening the NATS connection. A Sluice process keeps one connection for its
 * whole life: it reconnects forever (a NATS outage must degrade to 451s and
 * paused stages, never to a dead process that loses its place), with a jittered
 * wait so a restarted cluster is not hit by every client at the same instant.
 * (Connection state is tracked and logged by connection-state.ts.)
 * `closeConnection` drains, so pending publishes and acks reach the server
 * before the socket closes. Writes are coalesced per event-loop turn
 * (write-coalescing.ts).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { BusConfig } from './config.ts';
import { coalesceWrites } from './write-coalescing.ts';

/** Base wait between reconnect attempts, plus up to RECONNECT_JITTER_MS at random. */
export const RECONNECT_WAIT_MS = 1000;
export const RECONNECT_JITTER_MS = 1000;

export async function connectNats(cfg: BusConfig): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: cfg.servers,
      name: cfg.name,
      user: cfg.user,
      pass: cfg.password,
      token: cfg.token,
      maxReconnectAttempts: -1,
      reconnectTimeWait: RECONNECT_WAIT_MS,
      reconnectJitter: RECONNECT_JITTER_MS,
      waitOnFirstConnect: cfg.waitOnFirstConnect ?? false,
      // Detect a silently dead peer within ~1 minute rather than the default 4.
      pingInterval: 20_000,
      maxPingOut: 3,
      // nats.js otherwise builds an Error (a stack capture) for every request and publish on the
      // happy path, to decorate a possible timeout: 13% of Sluice's CPU in the foundation
      // benchmark. Our errors carry their context in logs and spans instead.
      noAsyncTraces: true,
    });
  } catch (err) {
    // A URL may carry user:password@: never into an error message.
    const shown = cfg.servers.map((u) => u.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@'));
    throw new Error(`cannot connect to NATS at ${shown.join(', ')}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  coalesceWrites(nc);
  return nc;
}

/** Drain subscriptions and pending writes, then close. Safe to call twice. */
export async function closeConnection(nc: NatsConnection): Promise<void> {
  if (nc.isClosed()) return;
  if (nc.isDraining()) {
    await nc.closed();
    return;
  }
  await nc.drain();
}
