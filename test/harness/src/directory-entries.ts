/**
 * A generated userdir-ldap-like directory for scale tests and the resolver
 * benchmark: N accounts u0..u(N-1), each with its emailForward values chosen
 * by a fixed rule, so a caller knows what any address must resolve to without
 * keeping a second copy of the directory:
 *   - every 10th account has no forward (its address answers unknown);
 *   - the others forward to u<i>@remote<i mod 50>.test (50 remote domains,
 *     so recipients of one envelope fall on several routes);
 *   - every 7th of those also forwards to b<i>@backup.test.
 * Pure: no I/O, the same N gives the same entries.
 */
import type { LdapTestEntry } from './slapd.ts';

/** How many remote domains the forwards spread over. */
export const DIRECTORY_REMOTE_DOMAINS = 50;

/** The emailForward values of account `i`. */
export function directoryForwards(i: number): string[] {
  if (i % 10 === 0) return [];
  return [`u${i}@remote${i % DIRECTORY_REMOTE_DOMAINS}.test`, ...(i % 7 === 0 ? [`b${i}@backup.test`] : [])];
}

/** The N generated entries, in uid order. */
export function directoryEntries(n: number): LdapTestEntry[] {
  return Array.from({ length: n }, (_, i) => ({ uid: `u${i}`, forwards: directoryForwards(i) }));
}

/**
 * The k-th account index of a spread-out sample over 0..n-1: the stride
 * 7919 is prime, so k = 0..n-1 visit every index once (for any n that is not
 * a multiple of 7919) and consecutive k do not hit neighbouring entries.
 */
export function sampleIndex(k: number, n: number): number {
  return (k * 7919) % n;
}

/** The k-th account that has a forward (skips every 10th index), spread over 0..n-1. */
export function forwardingIndex(k: number, n: number): number {
  const i = sampleIndex(k, n);
  return i % 10 === 0 ? (i + 1) % n : i;
}
