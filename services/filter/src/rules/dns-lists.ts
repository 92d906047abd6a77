/**
 * DNS block lists (RFC 5782): the client IP against DNSBL zones (§2.1:
 * reversed octets or nibbles under the zone) and the host names of links in
 * the message against URIBL zones (§2.2: the name under the zone). An A
 * answer in 127.0.0.0/8 means listed (127.255.255.x are the lists' own error
 * codes, e.g. "query refused", and do not count); NXDOMAIN means not listed.
 *
 * Lists are advisory: answers are cached (cacheSeconds), every lookup is
 * bounded by one overall timeout, and a list that does not answer in time is
 * skipped (DNSBL_SKIPPED, weight 0) — it never blocks or fails a verdict.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { RuleHit } from '@sluice/proto';
import type { RuleWeights } from '../authentication.ts';
import type { DnsResolve } from '../dns-resolver.ts';

export interface ZoneWeight {
  zone: string;
  weight: number;
}

export interface DnsListOptions {
  ipZones: readonly ZoneWeight[];
  uriZones: readonly ZoneWeight[];
  timeoutMs: number;
  cacheMs: number;
  maxUris: number;
}

type Answer = 'listed' | 'clear' | 'error';

/** Answers by query name, shared by all verdicts of the process. */
export class DnsListCache {
  readonly #entries = new Map<string, { answer: Answer; expires: number }>();
  readonly ttlMs: number;
  readonly maxEntries: number;
  constructor(ttlMs: number, maxEntries = 50_000) {
    this.ttlMs = ttlMs;
    this.maxEntries = maxEntries;
  }
  get(name: string): Answer | undefined {
    const e = this.#entries.get(name);
    if (!e) return undefined;
    if (e.expires < Date.now()) {
      this.#entries.delete(name);
      return undefined;
    }
    return e.answer;
  }
  set(name: string, answer: Answer): void {
    if (this.#entries.size >= this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(name, { answer, expires: Date.now() + this.ttlMs });
  }
}

/** RFC 5782 §2.1 (IPv4) and §2.4 (IPv6 nibbles) query prefix; null for anything else. */
export function reversedIp(ip: string): string | null {
  const v4 = ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
  if (isIPv4(v4)) return v4.split('.').reverse().join('.');
  if (!isIPv6(ip)) return null;
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups
    .map((g) => g.padStart(4, '0'))
    .join('')
    .split('')
    .reverse()
    .join('.');
}

/** Host names of http(s) links in the message text, lower case, deduplicated, at most `max`. */
export function linkHosts(body: Uint8Array, max: number): string[] {
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1');
  const out = new Set<string>();
  for (const m of text.matchAll(/\bhttps?:\/\/([A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)/gi)) {
    const host = m[1]!.toLowerCase();
    if (!host.includes('.') || isIPv4(host)) continue;
    out.add(host);
    if (out.size >= max) break;
  }
  return [...out];
}

async function lookup(resolve: DnsResolve, cache: DnsListCache, name: string): Promise<Answer> {
  const cached = cache.get(name);
  if (cached) return cached;
  let answer: Answer;
  try {
    const addrs = (await resolve(name, 'A')) as string[];
    answer = addrs.some((a) => a.startsWith('127.') && !a.startsWith('127.255.255.')) ? 'listed' : 'clear';
  } catch (err) {
    const code = (err as { code?: string }).code;
    answer = code === 'ENOTFOUND' || code === 'ENODATA' ? 'clear' : 'error';
  }
  if (answer !== 'error') cache.set(name, answer);
  return answer;
}

export async function dnsListHits(
  ip: string,
  body: Uint8Array,
  opts: DnsListOptions,
  resolve: DnsResolve,
  cache: DnsListCache,
  weights: RuleWeights,
): Promise<RuleHit[]> {
  const queries: { name: string; rule: 'DNSBL_LISTED' | 'URIBL_LISTED'; zone: ZoneWeight; what: string }[] =
    [];
  const rev = reversedIp(ip);
  if (rev)
    for (const zone of opts.ipZones)
      queries.push({ name: `${rev}.${zone.zone}`, rule: 'DNSBL_LISTED', zone, what: ip });
  if (opts.uriZones.length > 0) {
    for (const host of linkHosts(body, opts.maxUris)) {
      for (const zone of opts.uriZones)
        queries.push({ name: `${host}.${zone.zone}`, rule: 'URIBL_LISTED', zone, what: host });
    }
  }
  if (queries.length === 0) return [];
  const answers: (Answer | undefined)[] = new Array(queries.length);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(queries.map((q, i) => lookup(resolve, cache, q.name).then((a) => (answers[i] = a)))),
    new Promise<void>((r) => {
      timer = setTimeout(r, opts.timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  const hits: RuleHit[] = [];
  const skipped = new Set<string>();
  queries.forEach((q, i) => {
    const a = answers[i];
    if (a === 'listed') {
      hits.push({
        name: q.rule,
        score: (weights[q.rule] ?? 0) + q.zone.weight,
        detail: `${q.what} in ${q.zone.zone}`,
      });
    } else if (a !== 'clear') skipped.add(q.zone.zone);
  });
  if (skipped.size > 0) hits.push({ name: 'DNSBL_SKIPPED', score: 0, detail: [...skipped].join(', ') });
  return hits;
}
