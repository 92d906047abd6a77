/**
 * Does each active DKIM key match the record published for its selector
 * (RFC 6376 §3.6.1, <selector>._domainkey.<domain> TXT)? Checked at start
 * and then every dkim.dnsCheckInterval seconds. A key whose record is
 * missing or carries another public key would make every signature fail
 * (dkim=fail is worse than no signature), so it is set aside: mail its
 * domain would have been signed with goes out without that signature
 * (still with the other key type's, if that one matches), an error is
 * logged naming the key, and sluice_rewrites_total{step="dkim-dns",outcome}
 * counts the checks. A DNS failure changes nothing (the last answer stands).
 * A later check that finds the right record puts the key back.
 */
import { Resolver } from 'node:dns/promises';
import { type DkimKey, publicKeyData } from '@sluice/dkim';

export type ResolveTxt = (name: string) => Promise<string[][]>;

export type KeyDnsStatus = 'match' | 'mismatch' | 'missing' | 'dns-error';

export interface KeyDnsCheck {
  key: DkimKey;
  status: KeyDnsStatus;
  detail: string;
}

export function txtResolver(servers: readonly string[], timeoutSeconds: number): ResolveTxt {
  const r = new Resolver({ timeout: Math.max(1, Math.round(timeoutSeconds * 1000)), tries: 1 });
  if (servers.length > 0) r.setServers([...servers]);
  return (name) => r.resolveTxt(name);
}

/** Tags of a DKIM key record (RFC 6376 §3.2 tag-list). */
function tags(record: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of record.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).replace(/\s+/g, ''));
  }
  return out;
}

export async function checkPublishedKey(key: DkimKey, resolveTxt: ResolveTxt): Promise<KeyDnsCheck> {
  const name = `${key.selector}._domainkey.${key.domain}`;
  let answers: string[][];
  try {
    answers = await resolveTxt(name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA')
      return { key, status: 'missing', detail: `${name}: no TXT record` };
    return { key, status: 'dns-error', detail: `${name}: ${code ?? (err as Error).message}` };
  }
  const records = answers
    .map((chunks) => chunks.join(''))
    .map(tags)
    .filter((t) => t.has('p'));
  if (records.length === 0) return { key, status: 'missing', detail: `${name}: no DKIM key record (p=)` };
  const ours = publicKeyData(key.key);
  const match = records.some((t) => t.get('p') === ours && (t.get('k') ?? 'rsa') === key.type);
  return match
    ? { key, status: 'match', detail: `${name}: published key matches` }
    : { key, status: 'mismatch', detail: `${name}: the published key is not ${key.name}'s public key` };
}

export interface PublishedKeyMonitor {
  /** Keys whose record is missing or different: not used for signing. */
  readonly setAside: ReadonlySet<DkimKey>;
  /** Run one round of checks now (also what the timer does). */
  checkNow(): Promise<KeyDnsCheck[]>;
  stop(): void;
}

export function monitorPublishedKeys(opts: {
  keys: readonly DkimKey[];
  resolveTxt: ResolveTxt;
  intervalSeconds: number;
  onCheck: (c: KeyDnsCheck) => void;
}): PublishedKeyMonitor {
  const setAside = new Set<DkimKey>();
  const active = opts.keys.filter((k) => k.active);
  const checkNow = async () => {
    const results = await Promise.all(active.map((k) => checkPublishedKey(k, opts.resolveTxt)));
    for (const r of results) {
      if (r.status === 'match') setAside.delete(r.key);
      else if (r.status !== 'dns-error') setAside.add(r.key);
      opts.onCheck(r);
    }
    return results;
  };
  let timer: NodeJS.Timeout | undefined;
  if (opts.intervalSeconds > 0 && active.length > 0) {
    timer = setInterval(() => void checkNow(), opts.intervalSeconds * 1000);
    timer.unref();
  }
  return { setAside, checkNow, stop: () => clearInterval(timer) };
}
