/**
 * The rewriter's envelope decisions for one part, as a pure function: what
 * the envelope looks like when it leaves for the egress, and a list of
 * human-readable changes for the timeline ("rewritten" event). Signing and
 * sealing need the body and run after it (signing.ts).
 *
 *   1. SRS (libs/srs, postsrsd-compatible; docs/srs.md): when the part leaves
 *      for an outside destination (isExternalRoute) and the envelope sender is
 *      neither the null sender (RFC 5321 §4.5.5), nor of one of our domains,
 *      nor already an address of our SRS domain, `mailFrom.address` becomes
 *      its SRS0/SRS1 form and the real sender is kept in `mailFrom.original`.
 *      Only forwarded mail reaches an outside destination with a foreign
 *      sender (the MX refuses relaying), so this is "rewrite forwards".
 *      Mail to our internal hosts keeps its sender.
 *   2. Header hygiene: our internal headers (X-Sluice-*) never leave.
 *      Submission mail (later issue) must also drop what reveals an
 *      authenticated submitter's IP; there is no submission door yet.
 */
import type { Envelope, Route } from '@sluice/proto';
import { type Srs, SrsError, toExternalForm, toInternalForm } from '@sluice/srs';

export interface RewriteContext {
  /** This process' instance name, for the hop. */
  instance: string;
  /** Clock, injectable for tests. */
  now: () => Date;
  /** The SRS codec, when SRS is configured (srs.secrets). */
  srs?: Srs;
  /** Our domains (primary and aliases), lower case. */
  ourDomains: ReadonlySet<string>;
  /** How addresses appear in the change lines (log.addresses: clear, hash, drop). */
  redactAddress?: (address: string) => string;
}

export interface RewriteResult {
  envelope: Envelope;
  /** What was changed, one line each (empty when nothing was). */
  changes: string[];
  /** The SRS outcome, for the metric: rewritten, hash-only, or why not. */
  srs: 'rewritten' | 'hash-only' | 'not-needed' | 'off' | 'error';
}

/** Headers of ours that must not leave (case-insensitive name prefix). */
export const INTERNAL_HEADER_PREFIX = 'x-sluice-';

/**
 * Does this route leave our organisation? The MX of a domain, the relay
 * (smarthost), or a transport for a domain that is not ours (a fixed next hop
 * for an outside domain). A transport for one of our domains is an internal
 * host: mail there keeps its envelope sender.
 */
export function isExternalRoute(route: Route | undefined, ourDomains: ReadonlySet<string>): boolean {
  if (!route) return false;
  if (route.kind === 'mx') return !ourDomains.has(route.domain.toLowerCase());
  if (route.name === 'relay') return true;
  return !ourDomains.has(route.name.toLowerCase());
}

function domainOf(address: string): string {
  return address
    .slice(address.lastIndexOf('@') + 1)
    .toLowerCase()
    .replace(/\.$/, '');
}

export function rewriteEnvelope(env: Envelope, ctx: RewriteContext): RewriteResult {
  const changes: string[] = [];
  let mailFrom = env.mailFrom;
  let srsOutcome: RewriteResult['srs'] = ctx.srs ? 'not-needed' : 'off';
  const sender = env.mailFrom.address;
  if (
    ctx.srs &&
    sender !== '' &&
    env.mailFrom.original === undefined &&
    isExternalRoute(env.route, ctx.ourDomains) &&
    !ctx.ourDomains.has(domainOf(sender))
  ) {
    try {
      // SRS works on the unquoted form; the result is written back quoted where needed.
      const r = ctx.srs.forward(toInternalForm(sender), ctx.now());
      if (r.kind === 'rewritten') {
        mailFrom = { ...env.mailFrom, address: toExternalForm(r.address), original: sender };
        srsOutcome = r.form === 'hash-only' ? 'hash-only' : 'rewritten';
        const note = r.form === 'hash-only' ? ' (hash-only: too long for SRS, bounces cannot return)' : '';
        const shown = ctx.redactAddress ?? ((a: string) => a);
        changes.push(`srs: ${shown(sender)} -> ${shown(mailFrom.address)}${note}`);
      }
    } catch (err) {
      if (!(err instanceof SrsError)) throw err;
      srsOutcome = 'error';
      changes.push(`srs: not rewritten (${err.message})`);
    }
  }
  const prepend = env.prepend.filter((h) => !h.name.toLowerCase().startsWith(INTERNAL_HEADER_PREFIX));
  if (prepend.length !== env.prepend.length) {
    changes.push(`headers: removed ${env.prepend.length - prepend.length} internal header(s)`);
  }
  const envelope: Envelope = {
    ...env,
    mailFrom,
    prepend,
    hops: [...env.hops, { stage: 'rewriter', instance: ctx.instance, at: ctx.now().toISOString() }],
  };
  return { envelope, changes, srs: srsOutcome };
}
