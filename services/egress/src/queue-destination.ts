/**
 * What the delivery queue calls a destination, and the limits configured for
 * it (egress.destinations, first match wins; docs/egress-queue.md).
 *
 * A destination is where a part's route leads, as Postfix's queue manager
 * groups mail by next-hop domain: the recipient domain for an MX route
 * (lower-cased, RFC 5321 §2.4), "[host]:port" for a transport or relay route
 * (the bracket form Postfix uses for a host that is not looked up by MX). All
 * parts to one destination share its concurrency, its rate and its backoff.
 *
 * Rules match the destination name: "gmail.com" matches that domain only,
 * "*.outlook.com" every subdomain of outlook.com (not outlook.com itself),
 * "[relay.example]:587" that transport. Matching is case-insensitive.
 */
import type { SluiceConfig } from '@sluice/config';
import type { Route } from '@sluice/proto';

export interface DestinationLimits {
  /** Attempts in flight at once (per process, or all replicas when sharedConcurrency). */
  maxConcurrency: number;
  /** Attempts started per minute, all replicas together; undefined: unlimited. */
  ratePerMinute?: number;
  /** maxConcurrency comes from a rule: it holds across replicas (concurrency-shares.ts). */
  sharedConcurrency?: boolean;
}

export function destinationOf(route: Route): string {
  return route.kind === 'mx'
    ? route.domain.toLowerCase().replace(/\.$/, '')
    : `[${route.host}]:${route.port}`;
}

/** A KV key for a destination name: KV keys allow only [-/_=.a-zA-Z0-9]. */
export function destinationKey(name: string): string {
  return Buffer.from(name, 'utf8').toString('base64url');
}

export function ruleMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  if (p.startsWith('*.')) return n.endsWith(p.slice(1)) && n.length > p.length - 1;
  return p === n;
}

export function limitsFor(name: string, egress: SluiceConfig['egress']): DestinationLimits {
  const rule = egress.destinations.find((r) => ruleMatches(r.match, name));
  return {
    maxConcurrency: rule?.maxConcurrency ?? egress.destinationConcurrency,
    ratePerMinute: rule?.ratePerMinute,
    ...(rule?.maxConcurrency !== undefined ? { sharedConcurrency: true } : {}),
  };
}
