/**
 * The before-queue verdict for one message: what the filter answers the
 * ingress (FilterReply, proto rpc.ts) while the client still waits for the
 * reply to its final dot, so a refusal is an SMTP reply and never a bounce
 * (RELIABILITY-NOTES §1, rule 5: reject before 250).
 *
 * This first cut authenticates (SPF, DKIM, DMARC, ARC) and accepts: the
 * action is always 'accept' with score 0; the rule hits list the results so
 * the scoring engine (ROADMAP, Filter) can weigh them later without changing
 * the contract. The reply carries the Authentication-Results header for the
 * ingress to prepend; the body itself is never changed.
 */
import type { Readable } from 'node:stream';
import type { Envelope, FilterReply } from '@sluice/proto';
import { type AuthenticationInput, authenticateMessage } from './authentication.ts';
import type { DnsResolve } from './dns-resolver.ts';

export interface VerdictDeps {
  authservId: string;
  resolver: DnsResolve;
  /** Upper bound for the SPF evaluation, ms. */
  spfTimeLimitMs?: number;
}

export async function computeVerdict(
  env: Envelope,
  body: Uint8Array | Readable,
  deps: VerdictDeps,
): Promise<FilterReply> {
  const input: AuthenticationInput = {
    ip: env.client.ip,
    helo: env.client.helo,
    sender: env.mailFrom.address,
    authservId: deps.authservId,
    resolver: deps.resolver,
    spfTimeLimitMs: deps.spfTimeLimitMs,
  };
  const auth = await authenticateMessage(body, input);
  return {
    v: 1,
    verdict: { action: 'accept', score: 0, rules: auth.rules },
    auth: auth.summary,
    prepend: [auth.header],
  };
}
