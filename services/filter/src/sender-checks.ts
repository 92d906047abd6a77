/**
 * The sender checks of one message, as mailauth's authenticate() runs them
 * with BIMI off: every DKIM signature (RFC 6376), SPF (RFC 7208) for the
 * client IP, HELO and MAIL FROM, the ARC chain (RFC 8617), then DMARC (RFC
 * 9989) with the alignment of each signature. The same mailauth functions,
 * called in the same order with the same options as mailauth's
 * lib/mailauth.js, minus what the filter never asks for: trustReceived,
 * ARC sealing, BIMI, and the header texts (authentication.ts writes its own
 * Authentication-Results from the result infos).
 *
 * Why not authenticate() itself: lib/mailauth.js loads its BIMI module when
 * it loads (undici, @postalsys/vmc with the @peculiar ASN.1 packages,
 * fast-xml-parser), although BIMI never runs here: ~12 MB of RSS in every
 * process with the filter (docs/decisions/0045). sender-checks.test.ts runs
 * this and authenticate() over the same messages and DNS and holds the
 * results equal, so a mailauth upgrade that changes authenticate() fails a
 * test instead of drifting.
 */
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import type { AuthenticateOptions, AuthenticateResult } from 'mailauth';
import { arc } from 'mailauth/lib/arc/index.js';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { evaluateDmarc } from 'mailauth/lib/dmarc/index.js';
import { spf } from 'mailauth/lib/spf/index.js';

const require = createRequire(import.meta.url);
const { formatDomain, getAlignment } = require('mailauth/lib/tools.js') as {
  formatDomain: (domain: string) => string;
  getAlignment: (fromDomain: string, domains: string[], strict: boolean) => { domain?: string } | false;
};

/** What the checks take: authenticate()'s options that the filter sets. */
export type SenderCheckOptions = Pick<AuthenticateOptions, 'ip' | 'helo' | 'sender' | 'mta' | 'resolver'> & {
  /** Upper bound for the whole SPF evaluation, ms (RFC 7208 §4.6.4). */
  maxElapsedTime?: number;
};

/** The part of authenticate()'s result the filter reads. */
export type SenderCheckResults = Pick<
  AuthenticateResult,
  'dkim' | 'spf' | 'dmarc' | 'arc' | 'dmarcSkipReason'
>;

/** authenticate(message, { ...options, disableBimi: true }) without loading BIMI. */
export async function checkSender(
  message: Buffer | Readable,
  options: SenderCheckOptions,
): Promise<SenderCheckResults> {
  const opts = { ...options, strict: false }; // authenticate()'s copy of its options
  const dkimResult = await dkimVerify(message, {
    resolver: opts.resolver,
    sender: opts.sender, // the Return-Path header when empty
    strict: opts.strict,
  });

  // SPF's HELO identity: the IP when there was no HELO, an address literal in brackets (RFC 5321 §4.1.3).
  if (!opts.helo && opts.ip) opts.helo = opts.ip;
  if (opts.helo && isIP(opts.helo)) opts.helo = `[${opts.helo}]`;
  const spfResult = await spf(opts as Parameters<typeof spf>[0]);

  const arcResult = await arc(
    dkimResult.arc as Parameters<typeof arc>[0],
    {
      resolver: opts.resolver,
      strict: opts.strict,
      ip: opts.ip, // smtp.remote-ip in strict mode (RFC 8617 §6)
    } as Parameters<typeof arc>[1],
  );

  let dmarcResult: AuthenticateResult['dmarc'] | undefined;
  let dmarcSkipReason: AuthenticateResult['dmarcSkipReason'];
  if (dkimResult?.headerFrom) {
    const evaluated = await evaluateDmarc({
      headerFrom: dkimResult.headerFrom,
      fromFields: (dkimResult as { fromFields?: number }).fromFields,
      spfDomains: spfResult?.status.result === 'pass' && spfResult.domain ? [spfResult.domain] : [],
      dkimDomains: (dkimResult.results ?? [])
        .filter((r) => r.status.result === 'pass')
        .map((r) => ({
          id: (r as { id?: string }).id,
          domain: r.signingDomain!,
          aligned: r.status.aligned,
          underSized: r.status.underSized,
        })),
      arcResult,
      resolver: opts.resolver,
      strict: opts.strict,
    } as Parameters<typeof evaluateDmarc>[0]);
    dmarcResult = evaluated.response;
    dmarcSkipReason = evaluated.reason;
    const dkimAligned = evaluated.dkimAligned;
    if (dkimAligned && dmarcResult) {
      // As authenticate(): a passing signature takes the DMARC verdict on alignment (the Tree
      // Walk's organizational domain), a failing one the record's alignment mode.
      const fromDomain = (dmarcResult.status as { header: { from: string } }).header.from;
      const strictDkim = (dmarcResult as { alignment?: { dkim?: { strict?: boolean } } }).alignment?.dkim
        ?.strict;
      for (const row of dkimResult.results ?? []) {
        if (row.status.result === 'pass') {
          row.status.aligned = dkimAligned.has(formatDomain(row.signingDomain!)) ? row.signingDomain! : false;
        } else if (strictDkim) {
          const alignment = row.status.aligned && getAlignment(fromDomain, [row.signingDomain!], true);
          row.status.aligned = alignment ? alignment.domain || false : false;
        }
      }
    }
  }

  return {
    dkim: dkimResult,
    spf: spfResult,
    dmarc: dmarcResult || false,
    arc: arcResult || false,
    ...(!dmarcResult && dmarcSkipReason ? { dmarcSkipReason } : {}),
  };
}
