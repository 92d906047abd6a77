/**
 * What `sluice auth bans|unban ARG` is about: a client network (an IPv4
 * address, an IPv6 address or its /64 — counted as the authenticator counts
 * it, libs/credentials client-network.ts) or a user (any login name: uid,
 * uid@domain, an address of the entry; resolved to the uid through the
 * credential snapshot, as the authenticator keys its records). An unknown
 * login is hashed as typed, lower case — the record of a login that exists
 * nowhere, which an attacker may still have filled.
 */
import { isIP } from 'node:net';
import { clientNetwork, hashName } from '@sluice/credentials';

export type AuthTarget =
  | { kind: 'network'; network: string; hash: string }
  | { kind: 'user'; name: string; known: boolean; hash: string };

/** Parse ARG; `uidOf` maps a login name to its uid in the snapshot (undefined: unknown). */
export function parseAuthTarget(arg: string, uidOf: (login: string) => string | undefined): AuthTarget {
  const bare = arg.trim().replace(/\/64$/, '');
  if (isIP(bare)) {
    const network = clientNetwork(bare);
    return { kind: 'network', network, hash: hashName(network) };
  }
  const uid = uidOf(arg);
  const name = (uid ?? arg.trim()).toLowerCase();
  return { kind: 'user', name, known: uid !== undefined, hash: hashName(name) };
}

export function targetFilter(t: AuthTarget): { networkHash?: string; userHash?: string } {
  return t.kind === 'network' ? { networkHash: t.hash } : { userHash: t.hash };
}

export function describeTarget(t: AuthTarget): string {
  if (t.kind === 'network') return `network ${t.network}`;
  return t.known ? `user ${t.name}` : `login ${JSON.stringify(t.name)} (not in the credential snapshot)`;
}
