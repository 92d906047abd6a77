/**
 * One line per throttle record for `sluice auth bans`, `unban` and `check`:
 * what it counts (a network, a user from a network, a user from anywhere),
 * who — the uid when the user hash belongs to a user in the credential
 * snapshot, the network when the operator named it, else the hashes the
 * bucket holds (decision 0040: names are never stored) — and its state.
 */
import { type CredentialCache, hashName, type ThrottleEntry } from '@sluice/credentials';

export interface Names {
  /** user hash -> uid, for the users in the credential snapshot. */
  users: ReadonlyMap<string, string>;
  /** network hash -> network, for a network the operator named. */
  networks: ReadonlyMap<string, string>;
}

const SCOPE_TEXT = { ip: 'network', 'user-network': 'user@network', user: 'user' } as const;

export function whoOf(e: ThrottleEntry, names: Names): { user?: string; network?: string } {
  const user = e.userHash ? (names.users.get(e.userHash) ?? `user#${e.userHash}`) : undefined;
  const network = e.networkHash ? (names.networks.get(e.networkHash) ?? `net#${e.networkHash}`) : undefined;
  return { ...(user ? { user } : {}), ...(network ? { network } : {}) };
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function stateOf(e: ThrottleEntry, now: number): string {
  const r = e.record;
  if (r.until > now) {
    const what = e.scope === 'user' ? 'braked (454 except from usual networks)' : 'banned';
    return `${what} until ${new Date(r.until).toISOString()} (${age(r.until - now)} left)`;
  }
  return 'not banned';
}

export function renderEntry(e: ThrottleEntry, names: Names, now: number): string {
  const who = whoOf(e, names);
  const r = e.record;
  const parts = [
    `${SCOPE_TEXT[e.scope].padEnd(12)} ${[who.user, who.network].filter(Boolean).join(' from ')}`,
    stateOf(e, now),
    `${r.n} failure${r.n === 1 ? '' : 's'} since ${new Date(r.since).toISOString()}`,
    `${r.bans} ban${r.bans === 1 ? '' : 's'} so far`,
  ];
  if (r.ok) parts.push(`usual network (last login ${age(now - r.ok)} ago)`);
  return parts.join(', ');
}

/** The JSON form: the entry with its readable names and state. */
export function entryJson(e: ThrottleEntry, names: Names, now: number) {
  return {
    ...e,
    ...whoOf(e, names),
    banned: e.record.until > now,
    until: e.record.until > now ? new Date(e.record.until).toISOString() : null,
  };
}

/** user hash -> uid for every user of the snapshot (how a hashed key is shown by name). */
export function userNames(cache: CredentialCache): Map<string, string> {
  return new Map([...cache.users.values()].map((u) => [hashName(u.uid.toLowerCase()), u.uid]));
}
