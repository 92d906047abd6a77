/**
 * `sluice lookup ADDRESS [--json]`: ask the running resolver where an address
 * goes and why — the whole chain, like `postmap -q` over every map at once:
 * the result, the sources that decided (config, or the LDAP snapshot with its
 * version and age), each step of the expansion and the final targets with
 * their routes. It asks the resolver over NATS, so the answer is the one the
 * ingress gets at RCPT time, from the table (and snapshot) actually in use.
 */

import { type LookupReply, lookupReplySchema, subjects } from '@sluice/proto';
import type { ProcessConfig } from '@sluice/runtime';
import { askResolver } from './resolver-rpc.ts';

export async function lookupViaResolver(
  pc: ProcessConfig,
  address: string,
  live = false,
): Promise<LookupReply> {
  const ldap = pc.config.routing.ldap;
  const timeoutMs = live && ldap ? (ldap.timeout * ldap.urls.length + 5) * 1000 : 5000;
  const raw = await askResolver(
    pc,
    subjects.resolverLookup,
    { v: 1, address, ...(live ? { live } : {}) },
    timeoutMs,
  );
  return lookupReplySchema.parse(raw);
}

export function renderLookup(address: string, reply: LookupReply): string {
  const lines = [`${address}: ${reply.result}${reply.reason ? ` (${reply.reason})` : ''}`];
  if (reply.rejectText) lines.push(`  refused with: ${reply.rejectText}`);
  for (const d of reply.decidedBy ?? []) {
    const snap =
      d.snapshotVersion !== undefined
        ? ` (snapshot version ${d.snapshotVersion}, ${d.snapshotAgeSeconds ?? '?'} s old)`
        : '';
    lines.push(`  decided by: ${d.source}${snap}`);
  }
  for (const step of reply.trail) lines.push(`  ${step}`);
  if (reply.targets.length) lines.push(`  => ${reply.targets.join(', ')}`);
  return lines.join('\n');
}

/** Exit status: 0 ok, 1 refused (unknown, foreign), 75 tempfail (EX_TEMPFAIL). */
export function lookupExitCode(reply: LookupReply): number {
  return reply.result === 'ok' ? 0 : reply.result === 'tempfail' ? 75 : 1;
}
