/**
 * TLS-RPT data (RFC 8460): every session opened or refused under a DANE or
 * MTA-STS policy counts once for its policy domain and UTC day. Each egress
 * replica counts in memory and, every egress.tlsReports.flushInterval
 * seconds (and when it stops), merges its counts into the shared KV
 * (buckets.tlsReports, key `results.<day>.<domain>`) with compare-and-set,
 * so replicas never overwrite each other's counts. A replica that dies
 * loses at most one interval of counts: reports are statistics, not mail.
 *
 * A day's record holds, per policy (RFC 8460 §4.4: type and policy-string),
 * the successful and failed session counts and the failures grouped by
 * result type, receiving MX host name and IP (§4.3, §4.4 failure-details).
 * Sessions under no policy are not recorded ("no-policy-found" is not
 * reported: see docs/egress-tls.md).
 */
import type { BusClient } from '@sluice/bus';
import type { ReportedPolicy } from './tls-policy.ts';

export interface PolicyCounts {
  type: ReportedPolicy['type'];
  strings: string[];
  /** The MTA-STS mx patterns, or the MX hosts seen under DANE (mx-host). */
  mxHosts: string[];
  success: number;
  failure: number;
  failures: FailureCount[];
}

export interface FailureCount {
  resultType: string;
  receivingMxHostname?: string;
  receivingIp?: string;
  count: number;
  /** The first reason seen (additional-information). */
  detail?: string;
}

/** One policy domain's day: keyed by policy (type and strings). */
export interface DayRecord {
  policies: Record<string, PolicyCounts>;
}

export interface SessionResult {
  report: ReportedPolicy;
  /** "success" or an RFC 8460 §4.3 result type. */
  result: string;
  mxHost?: string;
  ip?: string;
  detail?: string;
  at: Date;
}

type Store = Pick<BusClient, 'tlsReportGet' | 'tlsReportCreate' | 'tlsReportUpdate'>;

/** The KV key of a domain's day (domain names are KV-safe once lower-cased, without a trailing dot). */
export const resultsKey = (day: string, domain: string) => `results.${day}.${kvSafe(domain)}`;
export const sentKey = (day: string, domain: string) => `sent.${day}.${kvSafe(domain)}`;
const kvSafe = (domain: string) =>
  domain
    .toLowerCase()
    .replace(/\.$/, '')
    .replace(/[^-a-z0-9.]/g, '_');

export const dayOf = (at: Date) => at.toISOString().slice(0, 10);
const policyId = (p: ReportedPolicy) => `${p.type}|${p.strings.join('|')}`;

/** Add `from` into `into` (both records of one domain and day). */
export function mergeDay(into: DayRecord, from: DayRecord): DayRecord {
  for (const [id, p] of Object.entries(from.policies)) {
    const have = into.policies[id];
    if (!have) {
      into.policies[id] = structuredClone(p);
      continue;
    }
    have.success += p.success;
    have.failure += p.failure;
    for (const h of p.mxHosts) if (!have.mxHosts.includes(h)) have.mxHosts.push(h);
    for (const f of p.failures) addFailure(have, f, f.count);
  }
  return into;
}

function addFailure(p: PolicyCounts, f: Omit<FailureCount, 'count'>, count: number): void {
  const same = p.failures.find(
    (g) =>
      g.resultType === f.resultType &&
      g.receivingMxHostname === f.receivingMxHostname &&
      g.receivingIp === f.receivingIp,
  );
  if (same) same.count += count;
  else p.failures.push({ ...f, count });
}

export class TlsRptRecorder {
  readonly #store: Store;
  /** Counts not yet merged into the store, by KV key. */
  #pending = new Map<string, DayRecord>();
  #flushing: Promise<void> = Promise.resolve();

  constructor(store: Store) {
    this.#store = store;
  }

  record(r: SessionResult): void {
    const key = resultsKey(dayOf(r.at), r.report.domain);
    let day = this.#pending.get(key);
    if (!day) {
      day = { policies: {} };
      this.#pending.set(key, day);
    }
    const id = policyId(r.report);
    let p = day.policies[id];
    if (!p) {
      p = {
        type: r.report.type,
        strings: r.report.strings,
        mxHosts: [...(r.report.mxPatterns ?? [])],
        success: 0,
        failure: 0,
        failures: [],
      };
      day.policies[id] = p;
    }
    if (r.report.type === 'tlsa' && r.mxHost && !p.mxHosts.includes(r.mxHost)) p.mxHosts.push(r.mxHost);
    if (r.result === 'success') {
      p.success++;
      return;
    }
    p.failure++;
    addFailure(
      p,
      {
        resultType: r.result,
        ...(r.mxHost ? { receivingMxHostname: r.mxHost } : {}),
        ...(r.ip ? { receivingIp: r.ip } : {}),
        ...(r.detail ? { detail: r.detail.slice(0, 300) } : {}),
      },
      1,
    );
  }

  /** Merge what was counted into the shared store (one flush at a time). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#flushNow());
    return this.#flushing;
  }

  async #flushNow(): Promise<void> {
    const pending = this.#pending;
    this.#pending = new Map();
    for (const [key, day] of pending) {
      try {
        await mergeInto(this.#store, key, day);
      } catch (err) {
        // Kept for the next flush rather than lost.
        const again = this.#pending.get(key);
        this.#pending.set(key, again ? mergeDay(day, again) : day);
        throw err;
      }
    }
  }
}

/** Compare-and-set merge of one day record into the store, retried on a lost race. */
async function mergeInto(store: Store, key: string, day: DayRecord): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await store.tlsReportGet(key);
    if (!current) {
      if (await store.tlsReportCreate(key, JSON.stringify(day))) return;
      continue;
    }
    const merged = mergeDay(JSON.parse(current.value) as DayRecord, day);
    if (await store.tlsReportUpdate(key, JSON.stringify(merged), current.revision)) return;
  }
  throw new Error(`TLS-RPT counts for ${key}: 20 compare-and-set conflicts in a row`);
}
