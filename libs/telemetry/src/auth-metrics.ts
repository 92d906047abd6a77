/**
 * The submission authentication instruments (libs/credentials): attempts by
 * outcome, bans by scope, and the credential snapshot's health (LDAP
 * reachable, age, users, refreshes). Labels are outcomes and scopes only,
 * never a user name or an IP. Registered once per registry, like
 * routing-source-metrics.ts, so two authenticators in one process share them.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface AuthMetrics {
  /** Authentication attempts by outcome (AUTH_OUTCOMES): throttled is the per-user brake. */
  readonly attempts: Counter<'outcome'>;
  /** Bans imposed by scope: ip (an address, or an IPv6 /64), user-network (a user from one network), user (the brake). */
  readonly bans: Counter<'scope'>;
  /** 1 when the last LDAP read of this process succeeded, 0 when it failed. */
  readonly ldapUp: Gauge;
  /** Users in the credential snapshot this process authenticates from. */
  readonly snapshotUsers: Gauge;
  /** Credential refreshes by outcome: applied, unchanged, held, failed, raced. */
  readonly refreshes: Counter<'outcome'>;
  /** Record when the snapshot in use was read from LDAP (ms epoch); the age gauge follows. */
  setSnapshotTime(fetchedAt: number | undefined): void;
}

const registered = new WeakMap<Registry, AuthMetrics>();

/** The outcomes of an AUTH: the authenticator's, and tls-required (AUTH before STARTTLS, 530 5.7.0). */
export const AUTH_OUTCOMES = ['ok', 'refused', 'banned', 'throttled', 'unavailable', 'tls-required'] as const;
export const BAN_SCOPES = ['ip', 'user-network', 'user'] as const;

export function authMetrics(registry: Registry): AuthMetrics {
  const existing = registered.get(registry);
  if (existing) return existing;
  const registers = [registry];
  let fetchedAt: number | undefined;
  const m: AuthMetrics = {
    attempts: new Counter({
      name: 'sluice_submission_auth_total',
      help: 'Submission authentication attempts by outcome (ok, refused, banned, throttled, unavailable, tls-required).',
      labelNames: ['outcome'],
      registers,
    }),
    bans: new Counter({
      name: 'sluice_submission_auth_bans_total',
      help: 'Brute-force bans imposed, by scope (ip: an address or IPv6 /64; user-network: a user from one network; user: the per-user brake, 454 away from its usual networks).',
      labelNames: ['scope'],
      registers,
    }),
    ldapUp: new Gauge({
      name: 'sluice_submission_credentials_ldap_up',
      help: '1 when the last LDAP read for credentials succeeded, 0 when LDAP was unreachable.',
      registers,
    }),
    snapshotUsers: new Gauge({
      name: 'sluice_submission_credentials_users',
      help: 'Users in the credential snapshot authentication answers from.',
      registers,
    }),
    refreshes: new Counter({
      name: 'sluice_submission_credentials_refreshes_total',
      help: 'Credential snapshot refreshes by outcome (applied, unchanged, held, failed, raced).',
      labelNames: ['outcome'],
      registers,
    }),
    setSnapshotTime(t) {
      fetchedAt = t;
    },
  };
  new Gauge({
    name: 'sluice_submission_credentials_snapshot_age_seconds',
    help: 'Age of the credential snapshot authentication answers from, seconds (-1: no snapshot).',
    registers,
    collect() {
      this.set(fetchedAt === undefined ? -1 : (Date.now() - fetchedAt) / 1000);
    },
  });
  // Every outcome and scope from the start (at 0), so a rate or an alert on one has a series to watch.
  for (const outcome of AUTH_OUTCOMES) m.attempts.inc({ outcome }, 0);
  for (const scope of BAN_SCOPES) m.bans.inc({ scope }, 0);
  registered.set(registry, m);
  return m;
}
