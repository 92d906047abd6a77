/**
 * From an accepted envelope to the parts the rest of the pipeline carries:
 * every recipient is expanded (expand.ts), every final target gets its route
 * (route.ts), and the targets are grouped into one envelope per route, so the
 * egress makes one SMTP transaction per part and a slow destination holds up
 * only its own part.
 *
 * Part ids are deterministic: the routes are sorted by their key and numbered
 * from 1 (`${queueId}-${n}`), so a redelivered envelope produces the same
 * parts and their publishes are dropped as duplicates (Nats-Msg-Id), and the
 * egress ledger (keyed by part id) stays valid across redeliveries.
 * A target reached from two recipients is delivered once, for the first.
 */
import type { Envelope, Recipient, Route } from '@sluice/proto';
import { parseAddress } from './address.ts';
import { type Expansion, type ExpansionError, expandRecipient } from './expand.ts';
import { routeFor, routeKey } from './route.ts';
import type { RoutingTable } from './routing-table.ts';

export interface RoutedTarget {
  address: string;
  via: string[];
  route: Route;
}

export interface RecipientResolution {
  recipient: Recipient;
  expansion: Expansion;
  targets: RoutedTarget[];
}

export interface Hop {
  stage: string;
  instance: string;
  at: string;
}

/** Expand every recipient of the envelope and route each target. */
export function resolveRecipients(table: RoutingTable, envelope: Envelope): RecipientResolution[] {
  return envelope.recipients.map((recipient) => {
    const expansion = expandRecipient(table, recipient.address);
    const targets = expansion.targets.map((t) => ({ ...t, route: routeFor(table, t.address) }));
    return { recipient, expansion, targets };
  });
}

/** One envelope per route, ordered by route key, with deterministic part ids. */
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
  return keys.map((key, i) => {
    const group = groups.get(key)!;
    return {
      ...envelope,
      partId: `${envelope.id}-${i + 1}`,
      recipients: group.recipients,
      route: group.route,
      hops: [...envelope.hops, hop],
    };
  });
}

function partRecipient(from: Recipient, t: RoutedTarget): Recipient {
  const r: Recipient = { address: t.address, original: from.original, status: 'pending' };
  if (t.via.length > 0) r.via = t.via;
  if (from.notify) r.notify = from.notify;
  if (from.orcpt) r.orcpt = from.orcpt;
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
