/**
 * Where a final target is delivered: the transport configured for the
 * address itself, else for its domain
 * (an internal host, a mailbox server, a test sink), else the relay
 * (smarthost) when one is configured, else the MX of its domain, looked up by
 * the egress at delivery time (RFC 5321 §5.1). The route travels in the
 * envelope (proto routeSchema); the egress only follows it.
 */
import type { Route } from '@sluice/proto';
import { normalizeDomain, parseAddress } from './address.ts';
import { type RoutingTable, transportFor } from './routing-table.ts';

export function routeFor(table: RoutingTable, targetAddress: string): Route {
  const at = targetAddress.lastIndexOf('@');
  const parsed = parseAddress(targetAddress);
  const domain = parsed?.domain ?? normalizeDomain(targetAddress.slice(at + 1));
  const found = transportFor(table, parsed?.key ?? targetAddress.toLowerCase(), domain);
  if (found) {
    const { name, transport } = found;
    return { kind: 'smtp', name, host: transport.host, port: transport.port, lmtp: transport.lmtp };
  }
  if (table.relay) {
    const r = table.relay;
    return { kind: 'smtp', name: 'relay', host: r.host, port: r.port, lmtp: r.lmtp };
  }
  return { kind: 'mx', domain };
}

/**
 * A stable key per route, used to group recipients into parts and to order
 * the parts: "smtp:<transport name>" or "mx:<domain>".
 */
export function routeKey(route: Route): string {
  return route.kind === 'smtp' ? `smtp:${route.name}` : `mx:${route.domain}`;
}

/** One line for the trail and the timeline. */
export function describeRoute(route: Route): string {
  if (route.kind === 'mx') return `MX of ${route.domain}`;
  const proto = route.lmtp ? 'LMTP' : 'SMTP';
  const what = route.name === 'relay' ? 'relay' : `transport ${route.name}`;
  return `${what} (${proto} ${route.host}:${route.port})`;
}
