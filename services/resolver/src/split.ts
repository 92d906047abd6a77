/**
 * From an accepted envelope to the parts the rest of the pipeline carries:
 * every recipient is expanded (expand.ts), every final target gets its route
 * (route.ts), and the targets are grouped into one envelope per route, so the
 * egress makes one SMTP transaction per part and a slow destination holds up
 * only its own part.
 *
 * Part ids come from content (proto partIdOf: the route key and the sorted
 * final recipients), never from a part's position: a redelivered envelope
 * resolved by the same table produces the same parts, whose republishes are
 * dropped as duplicates (Nats-Msg-Id); resolved by another table (a config
 * reload between the crash and the redelivery) it produces parts with other
 * ids, which are published, and the egress ledger (keyed by queue id and
 * final recipient) skips whoever was already delivered (decisions/0006).
 * A target reached from two recipients is delivered once, for the first.
 *
 * Parts and their recipients are built by spreading what came in, so fields
 * this version does not know (added by a newer replica) travel on unchanged.
 */
import { type Envelope, partIdOf, type Recipient, type Route } from '@sluice/proto';
import { parseAddress } from './address.ts';
import { type Expansion, type ExpansionError, expandRecipient } from './expand.ts';
import { routeFor, routeKey } from './route.ts';
import { isOurDomain, type RoutingTable } from './routing-table.ts';
import { reverseSrsRecipient } from './srs-reverse.ts';

export interface RoutedTarget {
  address: string;
  via: string[];
  route: Route;
  /**
   * The address of ours whose alias/forward rule sent mail to this foreign
   * target (the last step of `via`): the egress tells it when the target
   * refuses the forwarded mail for good (egress forward-failure notice).
   */
  forwardOwner?: string;
}

export interface RecipientResolution {
  recipient: Recipient;
  expansion: Expansion;
  targets: RoutedTarget[];
}

export type Hop = Envelope['hops'][number];

/** Expand every recipient of the envelope and route each target. */
export function resolveRecipients(table: RoutingTable, envelope: Envelope): RecipientResolution[] {
  return envelope.recipients.map((recipient) => {
    const srs = srsExpansion(table, recipient.address, envelope.mailFrom.address);
    const expansion = srs ?? expandRecipient(table, recipient.address);
    const targets = expansion.targets.map((t) => {
      const routed: RoutedTarget = { ...t, route: routeFor(table, t.address) };
      const owner = t.via.at(-1);
      const domain = parseAddress(t.address)?.domain;
      // A reversed SRS bounce is not a forward: its target has no forward owner.
      if (srs === null && owner !== undefined && domain !== undefined && !isOurDomain(table, domain))
        routed.forwardOwner = owner;
      return routed;
    });
    return { recipient, expansion, targets };
  });
}

/** One envelope per route, ordered by route key, with content-derived part ids. */
export function splitByRoute(envelope: Envelope, resolutions: RecipientResolution[], hop: Hop): Envelope[] {
  const groups = new Map<string, { route: Route; recipients: Recipient[] }>();
  const delivered = new Set<string>();
  for (const { recipient, targets } of resolutions) {
    for (const t of targets) {
      const dedupKey = parseAddress(t.address)?.key ?? t.address;
      if (delivered.has(dedupKey)) continue;
      delivered.add(dedupKey);
      const key = routeKey(t.route);
      let group = groups.get(key);
      if (!group) {
        group = { route: t.route, recipients: [] };
        groups.set(key, group);
      }
      group.recipients.push(partRecipient(recipient, t));
    }
  }
  const keys = [...groups.keys()].sort();
  return keys.map((key) => {
    const group = groups.get(key)!;
    const addresses = group.recipients.map((r) => r.address);
    return {
      ...envelope,
      partId: partIdOf(envelope.id, key, addresses),
      recipients: group.recipients,
      route: group.route,
      hops: [...envelope.hops, hop],
    };
  });
}

/**
 * A final target as a recipient of its part: the accepted recipient spread
 * (its notify, orcpt and any field a newer version added), with the target's
 * address and alias chain, pending, without a reply from an earlier attempt.
 */
function partRecipient(from: Recipient, t: RoutedTarget): Recipient {
  const { via: _via, lastReply: _lastReply, ...kept } = from;
  const r: Recipient = { ...kept, address: t.address, status: 'pending' };
  if (t.via.length > 0) r.via = t.via;
  if (t.forwardOwner !== undefined && r.forwardOwner === undefined) r.forwardOwner = t.forwardOwner;
  return r;
}

export interface FailedBranch {
  /** The accepted recipient whose expansion hit the error. */
  recipient: Recipient;
  error: ExpansionError;
}

/** The branches that resolved to nothing deliverable (unknown, loop, depth, invalid). */
export function failedBranches(resolutions: RecipientResolution[]): FailedBranch[] {
  return resolutions.flatMap(({ recipient, expansion }) =>
    expansion.errors.map((error) => ({ recipient, error })),
  );
}

/**
 * A bounce to one of our SRS addresses as an expansion: its one target is
 * the reversed address; a refusal (forged, expired since RCPT, not a bounce)
 * is an "unknown" error, dead-lettered with the reason like any recipient
 * that stopped resolving after acceptance. Null for other addresses.
 */
function srsExpansion(table: RoutingTable, address: string, mailFrom: string): Expansion | null {
  const srs = reverseSrsRecipient(table.srs, address, mailFrom);
  if (srs.kind === 'not-srs') return null;
  const base = { address, ours: true, trail: [srs.trail], sources: ['srs reverse'] };
  if (srs.kind === 'refused') {
    return {
      ...base,
      targets: [],
      rulesApplied: 0,
      errors: [{ kind: 'unknown', address, via: [], message: `${address}: ${srs.reason}` }],
    };
  }
  return { ...base, targets: [{ address: srs.address, via: [address] }], rulesApplied: 1, errors: [] };
}
