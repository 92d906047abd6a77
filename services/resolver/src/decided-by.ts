/**
 * The `decidedBy` list of a lookup reply: each source that decided, once,
 * and for the LDAP snapshot its version and its age at the time of the
 * answer (so `sluice lookup` can say "ldap snapshot 7, 42 s old").
 */
import type { LookupReply } from '@sluice/proto';
import type { RoutingTable } from './routing-table.ts';

type DecidedBy = NonNullable<LookupReply['decidedBy']>;

export function decidedBy(table: RoutingTable, sources: DecidedBy, now: number): DecidedBy {
  const out: DecidedBy = [];
  const snap = table.ldap?.snapshot;
  for (const s of sources) {
    if (out.some((o) => o.source === s.source)) continue;
    if (s.source.startsWith('ldap') && snap) {
      out.push({
        source: s.source,
        snapshotVersion: snap.version,
        snapshotAgeSeconds: Math.max(0, Math.round((now - snap.fetchedAt) / 1000)),
      });
    } else out.push({ source: s.source });
  }
  return out;
}
