/**
 * Sender authentication of one message: SPF (RFC 7208) for the client IP,
 * HELO and MAIL FROM; every DKIM signature (RFC 6376); DMARC (RFC 7489) with
 * alignment and the domain's policy (RFC 9989, DMARCbis: mailauth 7.1 does the
 * DNS tree walk and the np/psd/t tags); the ARC chain (RFC 8617). mailauth does
 * the checks; this module turns its results into Sluice's terms: the auth
 * summary of the envelope, one rule hit per result, and the single
 * Authentication-Results header (RFC 8601) with our authserv-id that the
 * ingress prepends.
 *
 * Results are data, never exceptions: a DNS failure is a temperror result
 * (RFC 7208 §2.6.6, RFC 7489 §6.6.3) reported like any other. A From header
 * DMARC cannot evaluate (several From fields or author domains, no or an
 * invalid author domain) is recorded as dmarc=fail with the reason, never as
 * "none" (RELIABILITY-NOTES §2, DMARC bypass via From confusion).
 */
import type { Readable } from 'node:stream';
import type { AuthSummary, PrependHeader, RuleHit } from '@sluice/proto';
import { headerField } from '@sluice/smtp';
import type { DnsResolve } from './dns-resolver.ts';
import { checkSender, type SenderCheckOptions, type SenderCheckResults } from './sender-checks.ts';

export interface AuthenticationInput {
  /** Client IP as the ingress trusts it. */
  ip: string;
  /** EHLO/HELO argument. */
  helo: string;
  /** MAIL FROM; '' for the null reverse-path (SPF then checks postmaster@HELO, RFC 7208 §2.4). */
  sender: string;
  /** Our authserv-id (RFC 8601 §2.5): the host name that vouches for the results. */
  authservId: string;
  resolver: DnsResolve;
  /** Upper bound for the whole SPF evaluation, ms (RFC 7208 §4.6.4): temperror when exceeded. */
  spfTimeLimitMs?: number;
  /** Rule weights (config filter.weights). */
  weights?: RuleWeights;
}

/** One rule hit of the verdict (proto ruleHitSchema). */
export type AuthRuleHit = RuleHit;

export interface AuthenticationOutcome {
  summary: AuthSummary;
  rules: AuthRuleHit[];
  /** The Authentication-Results header to prepend. */
  header: PrependHeader;
}

/** Run the checks over the message as received (the body is never changed). */
export async function authenticateMessage(
  message: Uint8Array | Readable,
  input: AuthenticationInput,
): Promise<AuthenticationOutcome> {
  // No BIMI (HTTPS fetches of logos and certificates): it is not part of the verdict (sender-checks.ts).
  const opts: SenderCheckOptions = {
    ip: input.ip,
    helo: input.helo,
    sender: input.sender,
    mta: input.authservId,
    resolver: input.resolver,
    maxElapsedTime: input.spfTimeLimitMs,
  };
  // mailauth takes a stream as well as a buffer: a large body is hashed as it passes.
  const source =
    message instanceof Uint8Array
      ? Buffer.from(message.buffer, message.byteOffset, message.byteLength)
      : message;
  const result = await checkSender(source, opts);
  return describeAuthentication(result, input.authservId, input.weights);
}

/** The part of mailauth's result this module reads (kept narrow so tests can build one by hand). */
export type AuthResults = SenderCheckResults;

/** Rule weights by name (config filter.weights); a name without a weight scores 0. */
export type RuleWeights = Readonly<Record<string, number>>;

/** DKIM results that mean "a signature was there and did not verify". */
const DKIM_BROKEN = new Set(['fail', 'neutral', 'permerror', 'policy']);

/**
 * Turn mailauth's results into the summary, rule hits and the
 * Authentication-Results header. Two RFC 9989 rules mailauth does not apply
 * are applied here (decisions/0016):
 * - a DKIM signature with l= shorter than the body earns no DMARC credit: a
 *   DMARC pass that rests only on such signatures (no aligned SPF pass) is a
 *   fail;
 * - an author DMARC cannot evaluate (mailauth's dmarc:false with
 *   dmarcSkipReason: several From fields or addresses, no domain) is a fail,
 *   never "none".
 */
export function describeAuthentication(
  r: AuthResults,
  authservId: string,
  weights: RuleWeights = {},
): AuthenticationOutcome {
  const resinfo: string[] = [];
  const rules: AuthRuleHit[] = [];
  const hit = (name: string, detail?: string) => rules.push({ name, score: weights[name] ?? 0, detail });

  const signatures = r.dkim.results.filter((s) => s.signingDomain);
  for (const s of r.dkim.results) resinfo.push(s.info);
  const byResult = new Map<string, string[]>();
  for (const s of signatures) {
    const key = DKIM_BROKEN.has(s.status.result) ? 'fail' : s.status.result;
    byResult.set(key, [...(byResult.get(key) ?? []), `d=${s.signingDomain} s=${s.selector ?? ''}`]);
  }
  for (const [result, sigs] of byResult) hit(`AUTH_DKIM_${result.toUpperCase()}`, sigs.join(', '));
  if (signatures.length === 0) hit('AUTH_DKIM_NONE');
  const partial = signatures.filter((s) => s.status.result === 'pass' && (s.status.underSized ?? 0) > 0);
  if (partial.length > 0)
    hit('AUTH_DKIM_PARTIAL_BODY', partial.map((s) => `d=${s.signingDomain}`).join(', '));

  const spf = r.spf ? r.spf.status.result : 'none';
  if (r.spf) resinfo.push(r.spf.info);
  hit(`AUTH_SPF_${spf.toUpperCase()}`, r.spf ? r.spf.domain : undefined);

  const arc = r.arc ? r.arc.status.result : 'none';
  const arcInfo = r.arc ? r.arc.info : undefined;
  if (arcInfo) resinfo.push(arcInfo);
  hit(`AUTH_ARC_${arc.toUpperCase()}`);

  let dmarc: string;
  let dmarcDetail: AuthSummary['dmarcDetail'];
  if (r.dmarc) {
    dmarc = r.dmarc.status.result;
    let info = r.dmarc.info;
    const alignment = (r.dmarc as { alignment?: DmarcAlignment }).alignment;
    // RFC 9989 (DKIM l=): a pass resting only on partial-body signatures gets no credit.
    if (dmarc === 'pass' && !alignment?.spf?.result && (alignment?.dkim?.underSized ?? 0) > 0) {
      dmarc = 'fail';
      info = info.replace(
        /^dmarc=pass/,
        'dmarc=fail reason="DKIM l= signature covers part of the body only"',
      );
    }
    resinfo.push(info);
    const policy = policyOf(r.dmarc.policy);
    hit(`AUTH_DMARC_${dmarc.toUpperCase()}`, `policy=${r.dmarc.policy}`);
    if (dmarc === 'fail' && policy === 'reject') hit('AUTH_DMARC_POLICY_REJECT');
    if (dmarc === 'fail' && policy === 'quarantine') hit('AUTH_DMARC_POLICY_QUARANTINE');
    dmarcDetail = { domain: r.dmarc.domain, result: dmarc, policy };
  } else if (r.dmarcSkipReason) {
    // RFC 8601 §2.2 reasonspec; the reason is one of mailauth's fixed keywords.
    dmarc = 'fail';
    resinfo.push(`dmarc=fail reason="${r.dmarcSkipReason}"`);
    hit('AUTH_DMARC_FAIL', r.dmarcSkipReason);
    hit('AUTH_DMARC_FROM_UNEVALUABLE', r.dmarcSkipReason);
    dmarcDetail = { result: 'fail' };
  } else {
    dmarc = 'none';
    hit('AUTH_DMARC_NONE');
  }
  // RFC 9989: indirect flows (lists, forwarders) break DMARC; a valid ARC chain offsets the penalty.
  if (dmarc === 'fail' && arc === 'pass') hit('AUTH_ARC_PASS_DMARC_FAIL');

  const summary: AuthSummary = {
    spf,
    dkim: signatures.map((s) => ({
      domain: s.signingDomain!,
      result: s.status.result,
      selector: s.selector,
      ...(typeof s.status.aligned === 'string' || s.status.aligned === false
        ? { aligned: Boolean(s.status.aligned) }
        : {}),
    })),
    dmarc,
    arc,
    ...(dmarcDetail ? { dmarcDetail } : {}),
  };
  return { summary, rules, header: authenticationResultsHeader(authservId, resinfo) };
}

interface DmarcAlignment {
  spf?: { result?: string | false };
  dkim?: { result?: string | false; underSized?: number };
}

function policyOf(p: unknown): 'none' | 'quarantine' | 'reject' | undefined {
  return p === 'none' || p === 'quarantine' || p === 'reject' ? p : undefined;
}

/** Whether any result is a temporary DNS error (RFC 7208 §2.6.6, RFC 6376 §3.9, RFC 9989). */
export function hasTemperror(summary: AuthSummary): boolean {
  return (
    summary.spf === 'temperror' ||
    summary.dmarc === 'temperror' ||
    summary.dkim.some((d) => d.result === 'temperror')
  );
}

/**
 * RFC 8601 §2.2: "authserv-id; resinfo; resinfo", folded one result per line,
 * or "authserv-id; none" when there is nothing to report. Result texts come
 * from mailauth and partly from the message (domains, addresses): CR, LF and
 * NUL are removed so no value can start a header of its own.
 */
export function authenticationResultsHeader(authservId: string, resinfo: readonly string[]): PrependHeader {
  const clean = resinfo.map((s) => s.replace(/[\r\n\0]+[ \t]*/g, ' ').trim()).filter((s) => s.length > 0);
  const value = clean.length === 0 ? `${authservId}; none` : `${authservId};\r\n\t${clean.join(';\r\n\t')}`;
  return headerField('Authentication-Results', value, 'filter');
}
