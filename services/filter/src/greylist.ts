/**
 * Greylisting (RFC 6647): a message from an unknown (client network, sender,
 * recipient) triplet is answered 451 4.7.1 once; a real MTA retries after a
 * while and is let through, a fire-and-forget sender is not. The triplets
 * live in the JetStream KV bucket buckets.greylist, so every filter replica
 * sees the same state; writes are compare-and-set (create / update at a
 * revision), so two replicas never both count a "first" attempt.
 *
 * - network: the client's /24 (IPv4) or /64 (IPv6), as senders retry from a
 *   pool of addresses (RFC 6647 §4.1);
 * - a retry after `delay` and within `delay + retryWindow` passes the triplet;
 *   one later starts over; a passed triplet is allowed for the bucket's TTL
 *   (auto-allow after success, refreshed on every pass);
 * - exempt: SRS senders (a forwarder's rewritten bounce address changes on
 *   every attempt and would never pass), configured good senders, and the
 *   submission/relay/dsn doors;
 * - the KV failing never greylists: the check is skipped (GREYLIST_SKIPPED).
 */
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import type { BusClient } from '@sluice/bus';
import type { Envelope } from '@sluice/proto';

export type GreylistStore = Pick<BusClient, 'greylistGet' | 'greylistCreate' | 'greylistUpdate'>;

export interface GreylistOptions {
  delayMs: number;
  retryWindowMs: number;
  goodSenders: readonly string[];
  /**
   * A passed triplet is rewritten (its bucket TTL restarted) when its last
   * write is older than this; 0: on every message. Default: every message.
   */
  refreshAfterMs?: number;
}

export type GreylistDecision =
  | { result: 'exempt'; why: string }
  | { result: 'pass' }
  | { result: 'greylist'; why: string }
  | { result: 'skipped'; error: unknown };

interface Triplet {
  first: number;
  passed?: boolean;
  /** When a passed triplet was last written. */
  at?: number;
}

/** The client network of a triplet: /24 for IPv4, /64 for IPv6 (RFC 6647 §4.1). */
export function clientNetwork(ip: string): string {
  const v4 = ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
  if (isIPv4(v4)) return `${v4.split('.').slice(0, 3).join('.')}.0/24`;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups
    .slice(0, 4)
    .map((g) => g.padStart(4, '0'))
    .join(':')}::/64`;
}

/** KV key of a triplet: a digest, since addresses hold characters KV keys may not. */
export function tripletKey(ip: string, sender: string, recipient: string): string {
  const id = `${clientNetwork(ip)}|${sender.toLowerCase() || '<>'}|${recipient.toLowerCase()}`;
  return `t.${createHash('sha256').update(id, 'utf8').digest('hex').slice(0, 40)}`;
}

/** SRS0/SRS1 addresses (the Sender Rewriting Scheme of forwarders). */
export function isSrsAddress(address: string): boolean {
  return /^SRS[01][=+-]/i.test(address);
}

function isGoodSender(sender: string, good: readonly string[]): boolean {
  const s = sender.toLowerCase();
  const domain = s.slice(s.lastIndexOf('@') + 1);
  return good.some((g) => {
    const x = g.toLowerCase();
    return x.includes('@') ? x === s : domain === x || domain.endsWith(`.${x}`);
  });
}

export function greylistExemption(env: Envelope, opts: GreylistOptions): string | null {
  if (env.source !== 'mx') return `source ${env.source}`;
  if (isSrsAddress(env.mailFrom.address)) return 'SRS sender';
  if (env.mailFrom.address && isGoodSender(env.mailFrom.address, opts.goodSenders)) return 'good sender';
  return null;
}

export async function greylistCheck(
  env: Envelope,
  store: GreylistStore,
  opts: GreylistOptions,
  now = Date.now(),
): Promise<GreylistDecision> {
  const exempt = greylistExemption(env, opts);
  if (exempt) return { result: 'exempt', why: exempt };
  try {
    const outcomes = await Promise.all(
      env.recipients.map((r) =>
        checkTriplet(store, tripletKey(env.client.ip, env.mailFrom.address, r.address), opts, now),
      ),
    );
    const waiting = outcomes.filter((o) => o !== 'pass');
    if (waiting.length === 0) return { result: 'pass' };
    return { result: 'greylist', why: waiting[0]! };
  } catch (error) {
    return { result: 'skipped', error };
  }
}

async function checkTriplet(
  store: GreylistStore,
  key: string,
  opts: GreylistOptions,
  now: number,
): Promise<string> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const rec = await store.greylistGet(key);
    if (!rec) {
      if (await store.greylistCreate(key, JSON.stringify({ first: now } satisfies Triplet)))
        return 'new triplet';
      continue; // another replica created it just now: read it
    }
    const t = JSON.parse(rec.value) as Triplet;
    if (t.passed) {
      // Auto-allow: a pass refreshes the entry, so the bucket TTL counts from the last message
      // (at most once per refreshAfterMs: one KV write per message would be wasted work).
      if (now - (t.at ?? t.first) >= (opts.refreshAfterMs ?? 0)) {
        await store.greylistUpdate(
          key,
          JSON.stringify({ first: t.first, passed: true, at: now }),
          rec.revision,
        );
      }
      return 'pass';
    }
    const age = now - t.first;
    if (age < opts.delayMs) return 'retry too early';
    if (age > opts.delayMs + opts.retryWindowMs) {
      if (await store.greylistUpdate(key, JSON.stringify({ first: now } satisfies Triplet), rec.revision)) {
        return 'retry too late, starting over';
      }
      continue;
    }
    // A retry inside the window: the triplet passes (a lost race means another replica passed it).
    await store.greylistUpdate(key, JSON.stringify({ first: t.first, passed: true, at: now }), rec.revision);
    return 'pass';
  }
  return 'contended, try again';
}
