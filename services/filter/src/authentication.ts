/**
 * Sender authentication of one message: SPF (RFC 7208) for the client IP,
 * HELO and MAIL FROM; every DKIM signature (RFC 6376); DMARC (RFC 7489) with
 * alignment and the domain's policy; the ARC chain (RFC 8617). mailauth does
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
import { type AuthenticateOptions, type AuthenticateResult, authenticate } from 'mailauth';
import type { DnsResolve } from './dns-resolver.ts';

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
  const opts: AuthenticateOptions & { maxElapsedTime?: number } = {
    ip: input.ip,
    helo: input.helo,
    sender: input.sender,
    mta: input.authservId,
    resolver: input.resolver,
    // BIMI needs HTTPS fetches of logos and certificates; it is not part of the verdict.
    disableBimi: true,
    // Passed through to the SPF check by mailauth's authenticate().
    maxElapsedTime: input.spfTimeLimitMs,
  };
  // mailauth takes a stream as well as a buffer: a large body is hashed as it passes.
  const source =
    message instanceof Uint8Array
      ? Buffer.from(message.buffer, message.byteOffset, message.byteLength)
      : message;
  const result = await authenticate(source, opts);
  return describeAuthentication(result, input.authservId);
}

/** The part of mailauth's result this module reads (kept narrow so tests can build one by hand). */
export type AuthResults = Pick<AuthenticateResult, 'dkim' | 'spf' | 'dmarc' | 'arc' | 'dmarcSkipReason'>;

/** Turn mailauth's results into the summary, rule hits and the Authentication-Results header. */
export function describeAuthentication(r: AuthResults, authservId: string): AuthenticationOutcome {
  const resinfo: string[] = [];
  const rules: AuthRuleHit[] = [];
  const hit = (method: string, result: string, detail?: string) =>
    rules.push({ name: `AUTH_${method.toUpperCase()}_${result.toUpperCase()}`, score: 0, detail });

  const signatures = r.dkim.results.filter((s) => s.signingDomain);
  for (const s of r.dkim.results) resinfo.push(s.info);
  for (const s of signatures) hit('dkim', s.status.result, `d=${s.signingDomain} s=${s.selector ?? ''}`);
  if (signatures.length === 0) hit('dkim', 'none');

  const spf = r.spf ? r.spf.status.result : 'none';
  if (r.spf) resinfo.push(r.spf.info);
  hit('spf', spf, r.spf ? r.spf.domain : undefined);

  const arc = r.arc ? r.arc.status.result : 'none';
  const arcInfo = r.arc ? r.arc.info : undefined;
  if (arcInfo) resinfo.push(arcInfo);
  hit('arc', arc);

  let dmarc: string;
  if (r.dmarc) {
    dmarc = r.dmarc.status.result;
    resinfo.push(r.dmarc.info);
    hit('dmarc', dmarc, `policy=${r.dmarc.policy}`);
  } else if (r.dmarcSkipReason) {
    // RFC 8601 §2.2 reasonspec; the reason is one of mailauth's fixed keywords.
    dmarc = 'fail';
    resinfo.push(`dmarc=fail reason="${r.dmarcSkipReason}"`);
    hit('dmarc', 'fail', r.dmarcSkipReason);
  } else {
    dmarc = 'none';
    hit('dmarc', 'none');
  }

  const summary: AuthSummary = {
    spf,
    dkim: signatures.map((s) => ({
      domain: s.signingDomain!,
      result: s.status.result,
      selector: s.selector,
    })),
    dmarc,
    arc,
  };
  return { summary, rules, header: authenticationResultsHeader(authservId, resinfo) };
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
