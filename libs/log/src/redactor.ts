/**
 * What logs and the message timeline may show of who mailed whom. `clear`
 * shows addresses and client IPs as they are; `drop` replaces them by
 * "[redacted]"; `hash` shows "h:" and the first 16 hex digits (64 bits) of
 * HMAC-SHA256(key, lower-cased value). The hash is stable, so an operator can
 * follow one address across lines, services and days, and compute it for an
 * address they are asked about — without Sluice keeping any record that maps
 * digests back to addresses. Without the key the digests cannot be reversed
 * by trying candidate addresses.
 */
import { createHmac } from 'node:crypto';

export type RedactionMode = 'clear' | 'hash' | 'drop';

export interface Redactor {
  /** The mode createRedactor was given (optional so that tests may pass a plain { address, ip }). */
  readonly mode?: RedactionMode;
  /** A mail address (or any identifier of a person) as it may appear in logs. */
  address(a: string): string;
  /** A client IP as it may appear in logs. */
  ip(ip: string): string;
}

export const REDACTED = '[redacted]';

/** "::ffff:192.0.2.1" (an IPv4 client on a dual-stack socket) is 192.0.2.1, so both hash alike. */
function canonicalIp(ip: string): string {
  return ip.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
}

export function createRedactor(opts: { mode: RedactionMode; key?: string }): Redactor {
  const { mode } = opts;
  if (mode === 'clear') return { mode, address: (a) => a, ip: (ip) => ip };
  if (mode === 'drop') return { mode, address: () => REDACTED, ip: () => REDACTED };
  const key = opts.key;
  if (!key) throw new Error('address hashing needs a key (log.hashKey)');
  const digest = (v: string) =>
    `h:${createHmac('sha256', key).update(v.toLowerCase()).digest('hex').slice(0, 16)}`;
  return { mode, address: digest, ip: (ip) => digest(canonicalIp(ip)) };
}
