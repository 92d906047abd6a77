/**
 * Where MTA-STS policies come from (RFC 8461 §3, §5): discovery by TXT,
 * an HTTPS fetch, and the shared cache in the JetStream KV bucket
 * buckets.mtaStsPolicies (one key per domain, all replicas see it).
 *
 * For a domain, per delivery attempt:
 *   1. TXT _mta-sts.<domain> (through egress.dnsResolver). A valid record
 *      whose id equals the cached policy's id, with the cache unexpired:
 *      the cached policy (§5.1: refetch only when the id changes).
 *   2. Otherwise fetch https://mta-sts.<domain>/.well-known/mta-sts.txt:
 *      PKIX-validated (system CAs plus egress.mtaSts.caFile), no redirects
 *      (§3.3), 2xx only, at most 64 KiB, text/plain; the new policy is
 *      cached with expiry now + max_age (§3.2, §5.1).
 *   3. No TXT record, or the fetch fails: an unexpired cached policy is
 *      still used (§3.3, §5.1: a policy is only replaced by a newer valid
 *      one, so an attacker deleting the TXT record cannot downgrade us);
 *      else there is no policy.
 * A DNS failure for the TXT record (SERVFAIL, timeout) counts as "no TXT"
 * for the same reason: the cached policy, if any, applies.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { isIP } from 'node:net';
import type { SecureDns } from '@sluice/dns';
import { type MtaStsPolicy, mxMatches, parsePolicy, parseStsTxt } from './mta-sts-policy.ts';
import type { MtaStsPolicyView, MtaStsSource } from './tls-policy.ts';

type LookupCallback = (
  err: Error | null,
  address: string | Array<{ address: string; family: number }>,
  family?: number,
) => void;

/** RFC 8461 §3.2: the policy body is small; refuse anything larger than 64 KiB. */
const MAX_POLICY_BYTES = 64 * 1024;

export interface CachedPolicy extends MtaStsPolicy {
  id: string;
  fetchedAt: number;
  expiresAt: number;
}

export interface PolicyStore {
  mtaStsPolicyGet(domain: string): Promise<Uint8Array | null>;
  mtaStsPolicyPut(domain: string, value: Uint8Array): Promise<void>;
}

export interface MtaStsSourceOptions {
  dns: SecureDns;
  store: PolicyStore;
  /** Extra CA certificates (egress.mtaSts.caFile). */
  ca?: Buffer;
  /** TESTS ONLY: the policy host's port instead of 443. */
  port?: number;
  fetchTimeoutMs: number;
  now?: () => number;
  log?: { warn(o: object, msg: string): void };
}

export function caFromFile(path: string | undefined): Buffer | undefined {
  return path ? readFileSync(path) : undefined;
}

export function createMtaStsSource(opts: MtaStsSourceOptions): MtaStsSource {
  const now = opts.now ?? Date.now;
  const view = (p: MtaStsPolicy): MtaStsPolicyView => ({
    mode: p.mode,
    matches: (h) => mxMatches(p, h),
    mx: p.mx,
    // RFC 8460 §4.4 policy-string: the policy's lines (as parsed: version, mode, mx, max_age).
    lines: ['version: STSv1', `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAge}`],
  });
  return {
    async policyFor(rawDomain) {
      const domain = rawDomain.toLowerCase().replace(/\.$/, '');
      const cached = await readCached(opts.store, domain);
      const live = cached && cached.expiresAt > now() ? cached : undefined;
      const txt = await opts.dns.txt(`_mta-sts.${domain}`);
      const id = txt.rcode === 'noerror' ? parseStsTxt(txt.records) : undefined;
      if (!id) return live ? view(live) : undefined;
      if (live && live.id === id) return view(live);
      try {
        const policy = parsePolicy(await fetchPolicy(domain, opts));
        const at = now();
        const record: CachedPolicy = { ...policy, id, fetchedAt: at, expiresAt: at + policy.maxAge * 1000 };
        await opts.store.mtaStsPolicyPut(domain, new TextEncoder().encode(JSON.stringify(record)));
        return view(policy);
      } catch (err) {
        opts.log?.warn({ err, domain }, 'MTA-STS policy fetch failed (TLS-RPT sts-policy-fetch-error)');
        if (live) return view(live);
        // RFC 8461 §3.3: a failed fetch with nothing cached: as if no policy.
        return undefined;
      }
    },
  };
}

async function readCached(store: PolicyStore, domain: string): Promise<CachedPolicy | undefined> {
  const raw = await store.mtaStsPolicyGet(domain);
  if (!raw) return undefined;
  try {
    return JSON.parse(new TextDecoder().decode(raw)) as CachedPolicy;
  } catch {
    return undefined;
  }
}

/** RFC 8461 §3.3: HTTPS GET, PKIX-validated for mta-sts.<domain>, no redirects, 2xx only. */
function fetchPolicy(domain: string, opts: MtaStsSourceOptions): Promise<string> {
  const host = `mta-sts.${domain}`;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: opts.port ?? 443,
        path: '/.well-known/mta-sts.txt',
        method: 'GET',
        servername: host,
        rejectUnauthorized: true,
        ...(opts.ca ? { ca: opts.ca } : {}),
        timeout: opts.fetchTimeoutMs,
        headers: { accept: 'text/plain' },
        // The policy host's address through the same resolver as the TXT record.
        lookup: (name: string, lookupOpts: { all?: boolean }, cb: LookupCallback) => {
          opts.dns.addresses(name).then(
            (a) => {
              const list = a.records.map((address) => ({ address, family: isIP(address) }));
              if (list.length === 0) {
                cb(
                  Object.assign(new Error(`no address for ${name} (${a.rcode})`), { code: 'ENOTFOUND' }),
                  '',
                  0,
                );
              } else if (lookupOpts.all) cb(null, list);
              else cb(null, list[0]!.address, list[0]!.family);
            },
            (err) => cb(err as Error, '', 0),
          );
        },
      },
      (res) => {
        if (!res.statusCode || res.statusCode < 200 || res.statusCode >= 300) {
          res.resume();
          reject(new Error(`policy fetch from ${host}: HTTP ${res.statusCode}`));
          return;
        }
        const type = String(res.headers['content-type'] ?? '');
        if (!/^text\/plain\b/i.test(type)) {
          res.resume();
          reject(new Error(`policy fetch from ${host}: content-type ${type || 'missing'} is not text/plain`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_POLICY_BYTES) {
            req.destroy(new Error(`policy from ${host} is larger than ${MAX_POLICY_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`policy fetch from ${host} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
