/**
 * MTA-STS policy text and TXT record (RFC 8461): parsing and MX matching.
 *
 *   - TXT at _mta-sts.<domain> (§3.1): "v=STSv1; id=<1-32 alnum>;"; records
 *     not starting with v=STSv1 are ignored; more than one valid record means
 *     no policy (§3.1).
 *   - Policy file (§3.2): "key: value" lines (CRLF or LF); version STSv1,
 *     mode enforce|testing|none, max_age 0..31557600 seconds, mx patterns
 *     (at least one unless mode is none); unknown keys ignored.
 *   - MX matching (§4.1): case-insensitive; "*.example.com" matches exactly
 *     one extra leftmost label (mail.example.com, not example.com nor
 *     a.b.example.com).
 */

export interface MtaStsPolicy {
  mode: 'enforce' | 'testing' | 'none';
  mx: string[];
  /** Seconds (§3.2: at most 31557600). */
  maxAge: number;
}

/** RFC 8461 §3.2: max_age is at most 31557600 (about one year). */
export const MAX_POLICY_AGE = 31_557_600;

/** The id of the domain's STS TXT record, or undefined when there is no valid one. */
export function parseStsTxt(records: readonly string[]): string | undefined {
  const valid = records
    .filter((r) => /^v=STSv1;/.test(r.trim()))
    .map((r) => /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(?:;|$)/.exec(r)?.[1]);
  // §3.1: exactly one record; several, or one without a valid id, is as if none.
  if (valid.length !== 1 || !valid[0]) return undefined;
  return valid[0];
}

export class PolicyParseError extends Error {
  override name = 'PolicyParseError';
}

export function parsePolicy(text: string): MtaStsPolicy {
  const fields = new Map<string, string[]>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    const i = line.indexOf(':');
    if (i <= 0) throw new PolicyParseError(`malformed policy line: ${line.slice(0, 80)}`);
    const key = line.slice(0, i).trim();
    const value = line.slice(i + 1).trim();
    fields.set(key, [...(fields.get(key) ?? []), value]);
  }
  const one = (k: string) => fields.get(k)?.[0];
  if (one('version') !== 'STSv1') throw new PolicyParseError('policy version is not STSv1');
  const mode = one('mode');
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') {
    throw new PolicyParseError(`policy mode "${mode ?? ''}" is not enforce, testing or none`);
  }
  const maxAgeText = one('max_age') ?? '';
  if (!/^\d{1,10}$/.test(maxAgeText)) throw new PolicyParseError('policy max_age is missing or not a number');
  const maxAge = Math.min(Number(maxAgeText), MAX_POLICY_AGE);
  const mx = (fields.get('mx') ?? []).map((m) => m.toLowerCase().replace(/\.$/, ''));
  if (mode !== 'none' && mx.length === 0) throw new PolicyParseError('policy has no mx pattern');
  return { mode, mx, maxAge };
}

/** RFC 8461 §4.1: does the MX host name match one of the policy's patterns? */
export function mxMatches(policy: Pick<MtaStsPolicy, 'mx'>, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return policy.mx.some((pattern) => {
    if (pattern.startsWith('*.')) {
      const suffix = pattern.slice(1); // ".example.com"
      if (!name.endsWith(suffix)) return false;
      const label = name.slice(0, -suffix.length);
      return label.length > 0 && !label.includes('.');
    }
    return name === pattern;
  });
}
