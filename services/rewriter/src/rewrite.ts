/**
 * The rewriter's decision for one part, as a pure function: what the envelope
 * looks like when it leaves for the egress, and a list of human-readable
 * changes for the timeline ("rewritten" event).
 *
 * Today it only records the hop: the stage exists in the flow so that its
 * real work lands without touching the other stages. The plug points, in the
 * order they will run (ROADMAP "Rewriter"):
 *   1. SRS (libsrs2/postsrsd scheme): when `envelope.route` is an external
 *      forward and `mailFrom.address` is neither ours nor the null sender,
 *      replace `mailFrom.address` with its SRS0/SRS1 form and push
 *      "srs: a@x -> SRS0=...@ours" to `changes`.
 *   2. Header hygiene: drop internal headers from `prepend` before they leave.
 *   3. DKIM-Signature for mail whose header From is one of our domains: the
 *      signature is computed over the assembled message (prepend + body) and
 *      put at the front of `prepend` (a stage adding a header puts it at the
 *      front); the stored body is never rewritten.
 *   4. ARC-Seal / ARC-Message-Signature / ARC-Authentication-Results (RFC 8617)
 *      for forwards, from `envelope.auth`, also at the front of `prepend`.
 * Steps 3 and 4 need the body; they will take it as an extra argument (the
 * service already has it from bus.loadBody), keeping this function pure.
 */
import type { Envelope } from '@sluice/proto';

export interface RewriteContext {
  /** This process' instance name, for the hop. */
  instance: string;
  /** Clock, injectable for tests. */
  now: () => Date;
}

export interface RewriteResult {
  envelope: Envelope;
  /** What was changed, one line each (empty when nothing was). */
  changes: string[];
}

export function rewriteEnvelope(env: Envelope, ctx: RewriteContext): RewriteResult {
  const changes: string[] = [];
  const envelope: Envelope = {
    ...env,
    hops: [...env.hops, { stage: 'rewriter', instance: ctx.instance, at: ctx.now().toISOString() }],
  };
  return { envelope, changes };
}
