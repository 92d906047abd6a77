/**
 * Queue ids: time-sortable, unique without coordination between replicas, and
 * safe as a NATS subject token and a KV key. The ULID layout (48-bit
 * millisecond time, 80 random bits) in Crockford base32, upper case.
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export function newQueueId(now: number = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const rnd = randomBytes(16);
  let rand = '';
  for (let i = 0; i < 16; i++) rand += ALPHABET[rnd[i]! % 32];
  return time + rand;
}

/** The receive time encoded in a queue id (ms since epoch). */
export function queueIdTime(id: string): number {
  let t = 0;
  for (const ch of id.slice(0, 10)) t = t * 32 + ALPHABET.indexOf(ch);
  return t;
}
