/**
 * Authentication-Results fields that claim to be ours (RFC 8601 §5: "an MTA
 * ... MUST delete (or otherwise obscure) any instance of this header field
 * that claims, by virtue of its authentication service identifier, to have
 * been added within its trust boundary but that did not come directly from
 * another trusted MTA"). A sender who writes "Authentication-Results:
 * mx.example.org; dkim=pass" hopes a downstream MUA or sieve rule trusts it.
 *
 * The stored body is never rewritten, so the answer is a list of removal
 * instructions (proto HeaderRemoval) the egress honours when it assembles the
 * message. ARC-Authentication-Results (RFC 8617 §4.1.1) naming our id are
 * removed only at instance 0 (no or an invalid i= tag: not part of any ARC
 * set): removing one inside a sealed set would break a chain someone else
 * signed, and the ARC validation already judges those.
 */
import type { HeaderRemoval } from '@sluice/proto';
import type { HeaderFieldView } from '../header-block.ts';

/** The authserv-id of an A-R value: the token before the first ";" (RFC 8601 §2.2), comments removed. */
export function authservIdOf(value: string): string {
  const head = value.split(';', 1)[0] ?? '';
  // Comments (RFC 5322 §3.2.2) and the optional version number after the id.
  const bare = head.replace(/\([^)]*\)/g, ' ').trim();
  return (bare.split(/\s+/)[0] ?? '').replace(/^"|"$/g, '').toLowerCase();
}

/** ARC instance of an AAR value (i=N before the authserv-id), 0 when absent or invalid. */
function arcInstance(value: string): number {
  const m = /^\s*i\s*=\s*(\d{1,2})\s*;/.exec(value);
  const n = m ? Number(m[1]) : 0;
  return n >= 1 && n <= 50 ? n : 0;
}

export function forgedAuthResults(fields: HeaderFieldView[], authservId: string): HeaderRemoval[] {
  const ours = authservId.toLowerCase();
  const out: HeaderRemoval[] = [];
  for (const f of fields) {
    if (f.name === 'authentication-results' && authservIdOf(f.value) === ours) {
      out.push({
        name: 'Authentication-Results',
        index: f.index,
        reason: 'claims our authserv-id (RFC 8601 §5)',
      });
    } else if (f.name === 'arc-authentication-results' && arcInstance(f.value) === 0) {
      const rest = f.value.replace(/^\s*i\s*=[^;]*;/, '');
      if (authservIdOf(rest) === ours) {
        out.push({
          name: 'ARC-Authentication-Results',
          index: f.index,
          reason: 'claims our authserv-id outside an ARC set (RFC 8601 §5)',
        });
      }
    }
  }
  return out;
}
