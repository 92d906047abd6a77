/**
 * The RCPT-time answer: is this address ours and deliverable? Used by the
 * ingress (through the lookup RPC) before it says 250 to RCPT, and by
 * `sluice lookup ADDRESS`, which prints the trail (like `postmap -q` for the
 * whole chain).
 *
 *   foreign  - not one of our domains (the ingress refuses relaying);
 *   unknown  - ours, and no rule, catch-all or mailbox transport takes it
 *              (550 5.1.1, RFC 3463);
 *   tempfail - ours, but its expansion is broken: an alias loop, a chain
 *              deeper than routing.maxDepth, or rules that lead to no
 *              deliverable address. This is a configuration error, so the
 *              sender is asked to retry (451 4.3.0) while the operator fixes
 *              it, instead of rejecting mail for an address that exists;
 *              Also tempfail: the LDAP directory would decide and its
 *              snapshot is missing or past routing.ldap.maxStaleness;
 *   ok       - everything else, with the final targets and their routes.
 * A routing.reject entry answers unknown with its text (rejectText).
 * `decidedBy` names every source that decided, with the LDAP snapshot's
 * version and age.
 *
 * An address of the SRS domain is answered by its reversal (srs-reverse.ts):
 * ok with the original sender for a bounce (null sender), unknown with the
 * reason (forged, expired, not a bounce) otherwise; tempfail when bounces
 * to the original sender's domain are over srs.bounceLimit (srs-bounce-limit.ts).
 *
 * `reason` is short and safe to show an SMTP client (no internal addresses);
 * the trail has the detail.
 */
import type { LookupReply } from '@sluice/proto';
import { decidedBy } from './decided-by.ts';
import { expandRecipient } from './expand.ts';
import { describeRoute, routeFor } from './route.ts';
import type { RoutingTable } from './routing-table.ts';
import type { SrsBounceLimiter } from './srs-bounce-limit.ts';
import { reverseSrsRecipient } from './srs-reverse.ts';

export function lookupAddress(
  table: RoutingTable,
  address: string,
  opts: { mailFrom?: string; now?: Date; srsBounceLimiter?: SrsBounceLimiter } = {},
): LookupReply {
  const now = opts.now?.getTime() ?? Date.now();
  const reply = lookupAnswer(table, address, opts.mailFrom, now, opts.srsBounceLimiter);
  return { ...reply, decidedBy: decidedBy(table, reply.decidedBy ?? [], now) };
}

function lookupAnswer(
  table: RoutingTable,
  address: string,
  mailFrom: string | undefined,
  now: number,
  srsBounceLimiter: SrsBounceLimiter | undefined,
): LookupReply {
  // RFC 5321 §4.5.1: "Postmaster" without a domain must be accepted.
  const full = /^postmaster$/i.test(address) ? `${address}@${table.primary}` : address;
  // A bounce to one of our SRS addresses: only for the null sender (srs-reverse.ts).
  const srs = reverseSrsRecipient(table.srs, full, mailFrom, new Date(now));
  if (srs.kind === 'refused')
    return {
      v: 1,
      result: 'unknown',
      targets: [],
      trail: [srs.trail],
      reason: srs.reason,
      decidedBy: [{ source: 'srs' }],
    };
  if (srs.kind === 'reversed') {
    const domain = srs.address.slice(srs.address.lastIndexOf('@') + 1);
    // Only a real bounce at RCPT counts (null sender); `sluice lookup` gives no sender.
    if (mailFrom === '' && srsBounceLimiter && !srsBounceLimiter.take(domain, now))
      return {
        v: 1,
        result: 'tempfail',
        targets: [],
        trail: [srs.trail, `over srs.bounceLimit for ${domain}: try later`],
        reason: 'too many bounces for this sender domain, try later',
        decidedBy: [{ source: 'srs' }],
      };
    return {
      v: 1,
      result: 'ok',
      targets: [srs.address],
      trail: [srs.trail, `${srs.address}: ${describeRoute(routeFor(table, srs.address))}`],
      decidedBy: [{ source: 'srs' }],
    };
  }
  const exp = expandRecipient(table, full, now);
  const trail = [...exp.trail];
  const sources = exp.sources.map((source) => ({ source }));
  const rejected = exp.errors.find((e) => e.kind === 'rejected');
  if (rejected && exp.targets.length === 0) {
    return {
      v: 1,
      result: 'unknown',
      targets: [],
      trail,
      reason: 'refused by a reject entry',
      rejectText: rejected.message,
      decidedBy: [{ source: 'config routing.reject' }],
    };
  }
  const unavailable = exp.errors.find((e) => e.kind === 'unavailable');
  if (unavailable) {
    return {
      v: 1,
      result: 'tempfail',
      targets: exp.targets.map((t) => t.address),
      trail,
      reason: 'routing directory unavailable',
      decidedBy: [...sources, { source: 'ldap' }],
    };
  }
  const targets = exp.targets.map((t) => t.address);
  if (exp.errors.some((e) => e.kind === 'invalid') && exp.targets.length === 0 && exp.rulesApplied === 0) {
    return { v: 1, result: 'unknown', targets: [], trail, reason: 'not a valid address', decidedBy: sources };
  }
  if (!exp.ours) {
    return { v: 1, result: 'foreign', targets, trail, reason: 'not one of our domains', decidedBy: sources };
  }
  for (const t of exp.targets) trail.push(`${t.address}: ${describeRoute(routeFor(table, t.address))}`);
  const broken = exp.errors.find((e) => e.kind === 'loop' || e.kind === 'depth');
  if (broken) {
    return {
      v: 1,
      result: 'tempfail',
      targets,
      trail,
      reason: broken.kind === 'loop' ? 'alias loop in local configuration' : 'alias chain too deep',
      decidedBy: sources,
    };
  }
  if (targets.length === 0) {
    if (exp.rulesApplied === 0)
      return { v: 1, result: 'unknown', targets, trail, reason: 'no such user', decidedBy: sources };
    return {
      v: 1,
      result: 'tempfail',
      targets,
      trail,
      reason: 'alias leads to no deliverable address',
      decidedBy: sources,
    };
  }
  return { v: 1, result: 'ok', targets, trail, decidedBy: sources, reaches: reachedBy(full, exp.targets) };
}

/** The address, every alias on the way and the final targets, each once, lower-case (LookupReply.reaches). */
function reachedBy(address: string, targets: Array<{ address: string; via: string[] }>): string[] {
  const all = new Set([address.toLowerCase()]);
  for (const t of targets) for (const a of [...t.via, t.address]) all.add(a.toLowerCase());
  return [...all];
}
