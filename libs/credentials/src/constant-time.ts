/**
 * Constant-time equality of two secrets (digests or whole hash strings), so
 * the time a comparison takes says nothing about how many leading bytes
 * matched. crypto.timingSafeEqual needs equal lengths: unequal lengths are
 * compared against the value itself (same work) and then answer false.
 */
import { timingSafeEqual } from 'node:crypto';

export function sameSecret(a: Uint8Array | string, b: Uint8Array | string): boolean {
  const x = typeof a === 'string' ? Buffer.from(a, 'utf8') : a;
  const y = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  if (x.length !== y.length) {
    timingSafeEqual(x, x);
    return false;
  }
  return timingSafeEqual(x, y);
}
