/**
 * Keeps the LDAP snapshot: reads the directory on routing.ldap.refreshInterval
 * and on demand (`sluice ldap refresh`), stores what it accepted in the shared
 * bucket (compare-and-set, so replicas never overwrite a newer snapshot), and
 * hands every snapshot any replica stored to `onSnapshot` (a KV watch). While
 * LDAP is unreachable nothing is stored: the snapshot ages, lookups keep
 * answering from it up to maxStaleness (ldap-gate.ts), and the metrics
 * (sluice_resolver_ldap_up, ..._snapshot_age_seconds) and logs say so.
 *
 * A refresh that would remove more than routing.ldap.maxDeleteShare of the
 * entries (a directory restored from an old backup, a wrong filter, a
 * half-replicated server) is held back and reported; `force` applies it.
 */
import type { BusClient } from '@sluice/bus';
import type { Logger } from '@sluice/log';
import type { LdapRefreshReply } from '@sluice/proto';
import type { RoutingSourceMetrics } from '@sluice/telemetry';
import {
  type DirectoryContext,
  type DirectoryRead,
  type LdapConfig,
  readDirectory,
} from './ldap-directory.ts';
import {
  decodeSnapshot,
  deletionShare,
  encodeSnapshot,
  entriesHash,
  type LdapSnapshot,
} from './ldap-snapshot.ts';

export interface LdapKeeperDeps {
  bus: Pick<BusClient, 'ldapSnapshotGet' | 'ldapSnapshotPut' | 'ldapSnapshotWatch'>;
  log: Logger;
  metrics: RoutingSourceMetrics;
  cfg: LdapConfig;
  directory: DirectoryContext;
  /** Called with each newer snapshot (from this replica or another). */
  onSnapshot: (s: LdapSnapshot) => void;
  read?: typeof readDirectory;
  now?: () => number;
}

export class LdapKeeper {
  readonly #d: LdapKeeperDeps;
  #current: LdapSnapshot | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopWatch: (() => void) | undefined;
  #running: Promise<LdapRefreshReply> | undefined;
  #stopped = false;
  /** Whether the last read reached LDAP (undefined: not tried yet). */
  up: boolean | undefined;

  constructor(deps: LdapKeeperDeps) {
    this.#d = deps;
  }

  get snapshot(): LdapSnapshot | undefined {
    return this.#current;
  }

  /** Load the shared snapshot, watch for newer ones, then refresh now and on the interval. */
  async start(): Promise<void> {
    const { log } = this.#d;
    try {
      const stored = await this.#d.bus.ldapSnapshotGet();
      if (stored) this.#adopt(decodeSnapshot(stored.value));
    } catch (err) {
      log.error({ err }, 'LDAP snapshot in the bucket unreadable: waiting for a refresh');
    }
    this.#stopWatch = await this.#d.bus.ldapSnapshotWatch((s) => {
      try {
        this.#adopt(decodeSnapshot(s.value));
      } catch (err) {
        log.error({ err }, 'LDAP snapshot stored by a peer unreadable: ignored');
      }
    });
    void this.refresh();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.refresh().finally(() => this.#schedule());
    }, this.#d.cfg.refreshInterval * 1000);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#stopWatch?.();
  }

  /** Take a snapshot if it is newer (version, then confirmation time) than the one in use. */
  #adopt(s: LdapSnapshot): void {
    const cur = this.#current;
    if (cur && (s.version < cur.version || (s.version === cur.version && s.fetchedAt <= cur.fetchedAt)))
      return;
    this.#current = s;
    const m = this.#d.metrics;
    m.setSnapshotTime(s.fetchedAt);
    m.snapshotVersion.set(s.version);
    m.snapshotEntries.set(Object.keys(s.entries).length);
    m.refusedForwards.set(s.refused.length);
    this.#d.onSnapshot(s);
  }

  /** Read LDAP now (one refresh at a time; a call during a refresh gets its result). */
  refresh(force = false): Promise<LdapRefreshReply> {
    this.#running ??= this.#refresh(force)
      .catch((err: unknown): LdapRefreshReply => {
        // The directory was read but the bucket could not be (NATS trouble): the snapshot in use stays.
        this.#d.metrics.ldapRefreshes.inc({ outcome: 'failed' });
        this.#d.log.error({ err }, 'LDAP refresh could not store the snapshot: the one in use keeps serving');
        return {
          v: 1,
          outcome: 'failed',
          refused: [],
          message: `snapshot bucket: ${(err as Error).message}`,
        };
      })
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  async #refresh(force: boolean): Promise<LdapRefreshReply> {
    const { log, metrics, cfg } = this.#d;
    const now = this.#d.now ?? Date.now;
    let read: DirectoryRead;
    try {
      read = await (this.#d.read ?? readDirectory)(cfg, this.#d.directory);
    } catch (err) {
      this.up = false;
      metrics.ldapUp.set(0);
      metrics.ldapRefreshes.inc({ outcome: 'failed' });
      const cur = this.#current;
      const age = cur ? Math.round((now() - cur.fetchedAt) / 1000) : undefined;
      const serving = cur
        ? age! <= cfg.maxStaleness
          ? `serving snapshot ${cur.version} (${age} s old, bound ${cfg.maxStaleness} s)`
          : `snapshot ${cur.version} is ${age} s old, past the bound (${cfg.maxStaleness} s): lookups tempfail`
        : 'no snapshot: lookups in the directory domain tempfail';
      log.error(
        { err: (err as Error).message, snapshotVersion: cur?.version, snapshotAgeSeconds: age },
        `LDAP unreachable: ${serving}`,
      );
      return {
        v: 1,
        outcome: 'failed',
        snapshotVersion: cur?.version,
        refused: [],
        message: `${(err as Error).message}; ${serving}`,
      };
    }
    if (!this.up) log.info({ server: read.server }, 'LDAP reachable');
    this.up = true;
    metrics.ldapUp.set(1);
    if (read.refused.length > 0) {
      log.warn(
        { refused: read.refused },
        `LDAP: ${read.refused.length} forward value(s) refused, not routed`,
      );
    }
    const stored = await this.#d.bus.ldapSnapshotGet();
    const prev = stored ? decodeSnapshot(stored.value) : undefined;
    const hash = entriesHash(read.entries);
    const count = Object.keys(read.entries).length;
    let next: LdapSnapshot;
    let outcome: 'applied' | 'unchanged';
    if (prev && prev.contentHash === hash) {
      next = { ...prev, fetchedAt: now(), server: read.server, refused: read.refused };
      outcome = 'unchanged';
    } else {
      const share = prev ? deletionShare(prev.entries, read.entries) : 0;
      if (prev && share > cfg.maxDeleteShare && !force) {
        metrics.ldapRefreshes.inc({ outcome: 'held' });
        const message = `refresh held back: it would remove ${Math.round(share * 100)} % of ${Object.keys(prev.entries).length} entries (routing.ldap.maxDeleteShare ${Math.round(cfg.maxDeleteShare * 100)} %); snapshot ${prev.version} keeps serving — check the directory, then 'sluice ldap refresh --force' to apply`;
        log.error({ snapshotVersion: prev.version, entries: count, deletionShare: share }, message);
        return {
          v: 1,
          outcome: 'held',
          snapshotVersion: prev.version,
          entries: count,
          refused: read.refused,
          message,
        };
      }
      next = {
        v: 1,
        version: (prev?.version ?? 0) + 1,
        fetchedAt: now(),
        server: read.server,
        contentHash: hash,
        entries: read.entries,
        refused: read.refused,
      };
      outcome = 'applied';
    }
    const rev = await this.#d.bus.ldapSnapshotPut(encodeSnapshot(next), stored?.revision ?? 0);
    if (rev === null) {
      // Another replica stored a snapshot between our read and our write: its snapshot is as fresh.
      metrics.ldapRefreshes.inc({ outcome: 'unchanged' });
      return {
        v: 1,
        outcome: 'unchanged',
        entries: count,
        refused: read.refused,
        message: 'another resolver stored a snapshot meanwhile',
      };
    }
    this.#adopt(next);
    metrics.ldapRefreshes.inc({ outcome });
    if (outcome === 'applied')
      log.info({ snapshotVersion: next.version, entries: count }, 'LDAP snapshot applied');
    return {
      v: 1,
      outcome,
      snapshotVersion: next.version,
      entries: count,
      refused: read.refused,
      message:
        outcome === 'applied'
          ? `snapshot ${next.version} applied (${count} entries)`
          : `snapshot ${next.version} confirmed (${count} entries, unchanged)`,
    };
  }
}
