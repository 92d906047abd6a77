/**
 * The resolver's routing-source instruments: is the LDAP directory reachable,
 * how old is the snapshot lookups answer from, which version, how refreshes
 * and config reloads went. Registered on the process registry on first use
 * (once per registry, so two resolvers in one test process share them).
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface RoutingSourceMetrics {
  /** 1 when the last LDAP read succeeded, 0 when it failed. */
  readonly ldapUp: Gauge;
  /** Age of the LDAP snapshot in use, seconds (set by `setSnapshotTime`). */
  readonly snapshotAge: Gauge;
  readonly snapshotVersion: Gauge;
  readonly snapshotEntries: Gauge;
  /** Forward values refused in the snapshot (pipe, file, CR/LF, self-loop). */
  readonly refusedForwards: Gauge;
  /** LDAP refreshes by outcome: applied, unchanged, held, failed. */
  readonly ldapRefreshes: Counter<'outcome'>;
  /** Config file reloads by outcome: applied, refused. */
  readonly configReloads: Counter<'outcome'>;
  /** Record when the snapshot in use was read from LDAP (ms epoch); the age gauge follows. */
  setSnapshotTime(fetchedAt: number | undefined): void;
}

const registered = new WeakMap<Registry, RoutingSourceMetrics>();

export function routingSourceMetrics(registry: Registry): RoutingSourceMetrics {
  const existing = registered.get(registry);
  if (existing) return existing;
  const registers = [registry];
  let fetchedAt: number | undefined;
  const m: RoutingSourceMetrics = {
    ldapUp: new Gauge({
      name: 'sluice_resolver_ldap_up',
      help: '1 when the last LDAP read succeeded, 0 when LDAP was unreachable.',
      registers,
    }),
    snapshotAge: new Gauge({
      name: 'sluice_resolver_ldap_snapshot_age_seconds',
      help: 'Age of the LDAP snapshot lookups answer from, seconds (-1: no snapshot).',
      registers,
      collect() {
        this.set(fetchedAt === undefined ? -1 : (Date.now() - fetchedAt) / 1000);
      },
    }),
    snapshotVersion: new Gauge({
      name: 'sluice_resolver_ldap_snapshot_version',
      help: 'Version of the LDAP snapshot in use.',
      registers,
    }),
    snapshotEntries: new Gauge({
      name: 'sluice_resolver_ldap_snapshot_entries',
      help: 'Entries in the LDAP snapshot in use.',
      registers,
    }),
    refusedForwards: new Gauge({
      name: 'sluice_resolver_ldap_refused_forwards',
      help: 'Forward values in LDAP refused as not plain addresses (pipe, file, CR/LF, self-loop).',
      registers,
    }),
    ldapRefreshes: new Counter({
      name: 'sluice_resolver_ldap_refreshes_total',
      help: 'LDAP refreshes by outcome (applied, unchanged, held, failed).',
      labelNames: ['outcome'],
      registers,
    }),
    configReloads: new Counter({
      name: 'sluice_resolver_config_reloads_total',
      help: 'Routing config reloads by outcome (applied, refused).',
      labelNames: ['outcome'],
      registers,
    }),
    setSnapshotTime(t) {
      fetchedAt = t;
    },
  };
  registered.set(registry, m);
  return m;
}
