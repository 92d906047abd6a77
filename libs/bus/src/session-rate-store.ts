/**
 * The MX's session counters in JetStream KV (buckets.ingressSessionRate),
 * shared by every ingress replica so a client's sessions per minute are
 * counted once however the load balancer spreads them. One key per (client,
 * minute), its value the count as decimal text; the bucket's max_age drops
 * keys of past minutes. Increments are compare-and-set (create when absent,
 * update at the revision read), retried when another replica wrote in
 * between, so concurrent sessions on two replicas are both counted.
 * Keys are chosen by the caller and must be KV-safe ([-/_=.a-zA-Z0-9]).
 */
import type { KV } from '@nats-io/kv';
import { isConflict } from './greylist-store.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How long a counter key lives (the bucket's max_age): the current minute and the one before. */
export const SESSION_RATE_KEY_TTL_MS = 2 * 60_000;

/** Compare-and-set rounds before giving up (each lost round means another session was counted). */
const MAX_ROUNDS = 20;

/** Every round lost: this many sessions of one client at once is itself a flood. */
export class SessionCountContended extends Error {
  override name = 'SessionCountContended';
}

/**
 * Add one to `key`; the count after this session. After a lost round, waits a random 0 to
 * 2^round ms (at most 64) so that many concurrent sessions do not keep colliding.
 * Throws SessionCountContended after MAX_ROUNDS lost rounds, and a KV error as it is.
 */
export async function countSession(kv: KV, key: string): Promise<number> {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (round > 0) await new Promise((r) => setTimeout(r, Math.random() * 2 ** Math.min(round, 6)));
    const e = await kv.get(key);
    const current = e?.operation === 'PUT' ? Number(decoder.decode(e.value)) || 0 : 0;
    const next = current + 1;
    try {
      // A deleted or purged key still has a revision to update at; only a key never written is created.
      if (e) await kv.update(key, encoder.encode(String(next)), e.revision);
      else await kv.create(key, encoder.encode(String(next)));
      return next;
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }
  throw new SessionCountContended(`session counter ${key}: ${MAX_ROUNDS} compare-and-set rounds lost`);
}
