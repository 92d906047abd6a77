/**
 * The routing table in use, rebuilt whenever one of its sources changes: the
 * config file (config-reload.ts) or the LDAP snapshot (ldap-keeper.ts). Each
 * rebuild makes a new table and swaps it in, so a lookup or a resolve in
 * progress keeps the table it started with.
 */
import type { SluiceConfig } from '@sluice/config';
import type { LdapSnapshot } from './ldap-snapshot.ts';
import { buildRoutingTable, type LdapRules, type RoutingConfig, type RoutingTable } from './routing-table.ts';

export class RoutingState {
  #config: RoutingConfig;
  #ldap: LdapRules | undefined;
  #table: RoutingTable;

  constructor(config: RoutingConfig) {
    this.#config = config;
    this.#table = buildRoutingTable(config);
  }

  get table(): RoutingTable {
    return this.#table;
  }

  /** Apply a reloaded config (already validated). Throws only on a bug; the old table stays then. */
  setConfig(config: SluiceConfig): void {
    const next = buildRoutingTable(config, this.#ldap);
    this.#config = config;
    this.#table = next;
  }

  setSnapshot(s: LdapSnapshot): void {
    const ldap = { version: s.version, fetchedAt: s.fetchedAt, entries: s.entries };
    this.#table = buildRoutingTable(this.#config, ldap);
    this.#ldap = ldap;
  }
}
