/**
 * This replica's in-memory view of buckets.credentials: a KV watch delivers
 * every stored user and meta record, then every change any replica makes
 * (put, delete), so authentication reads memory only and keeps working from
 * the last snapshot while LDAP (or, briefly, NATS) is away. Login names map
 * to the user: the uid itself, "uid@<login domain>", and the addresses from
 * the login attributes. A login claimed by two users maps to neither
 * (ambiguous: refused rather than guessed).
 */
import type { KV } from '@nats-io/kv';
import {
  decodeMeta,
  decodeUser,
  isMetaKey,
  type SnapshotMeta,
  USER_KEY_PREFIX,
} from './credential-records.ts';
import type { DirectoryUser } from './ldap-users.ts';

export class CredentialCache {
  readonly #users = new Map<string, DirectoryUser>();
  /** Login name (lower case) -> keys of the users claiming it. */
  readonly #logins = new Map<string, Set<string>>();
  readonly #loginDomains: string[];
  #meta: SnapshotMeta | null = null;
  #stop: (() => void) | undefined;
  #onChange: () => void = () => {};

  constructor(loginDomains: string[] = []) {
    this.#loginDomains = loginDomains.map((d) => d.toLowerCase());
  }

  /** Whether a snapshot exists (some refresh, by any replica, stored one). */
  get loaded(): boolean {
    return this.#meta !== null;
  }

  get meta(): SnapshotMeta | null {
    return this.#meta;
  }

  get size(): number {
    return this.#users.size;
  }

  /** The stored users by key (the sync compares a directory read against them). */
  get users(): ReadonlyMap<string, DirectoryUser> {
    return this.#users;
  }

  /** Called after every change (metrics). */
  onChange(fn: () => void): void {
    this.#onChange = fn;
  }

  /** The user a login name stands for, or undefined (unknown or ambiguous). */
  lookup(login: string): DirectoryUser | undefined {
    const keys = this.#logins.get(login.trim().toLowerCase());
    if (keys?.size !== 1) return undefined;
    const [key] = keys;
    return this.#users.get(key!);
  }

  #names(u: DirectoryUser): string[] {
    const uid = u.uid.toLowerCase();
    return [uid, ...this.#loginDomains.map((d) => `${uid}@${d}`), ...u.logins];
  }

  #index(key: string, u: DirectoryUser | undefined, add: boolean): void {
    if (!u) return;
    for (const name of this.#names(u)) {
      let set = this.#logins.get(name);
      if (add) {
        if (!set) {
          set = new Set();
          this.#logins.set(name, set);
        }
        set.add(key);
      } else if (set) {
        set.delete(key);
        if (set.size === 0) this.#logins.delete(name);
      }
    }
  }

  apply(key: string, operation: 'PUT' | 'DEL' | 'PURGE', value: Uint8Array): void {
    if (isMetaKey(key)) {
      this.#meta = operation === 'PUT' ? decodeMeta(value) : null;
    } else if (key.startsWith(USER_KEY_PREFIX)) {
      this.#index(key, this.#users.get(key), false);
      const u = operation === 'PUT' ? decodeUser(value) : null;
      if (u) {
        this.#users.set(key, u);
        this.#index(key, u, true);
      } else {
        this.#users.delete(key);
      }
    }
    this.#onChange();
  }

  /** Load what the bucket holds and follow its changes; resolves once the stored values are in. */
  async start(kv: KV): Promise<void> {
    const status = await kv.status();
    const iter = await kv.watch();
    this.#stop = () => iter.stop();
    let initial = status.values;
    let ready!: () => void;
    const loaded = new Promise<void>((r) => {
      ready = r;
    });
    if (initial === 0) ready();
    // Should the counts disagree (a write racing the start), do not wait forever for the last one.
    const fallback = setTimeout(ready, 10_000);
    fallback.unref();
    void (async () => {
      for await (const e of iter) {
        this.apply(e.key, e.operation, e.value);
        // The watch delivers the stored values first; delta counts those still to come.
        if (initial > 0 && (e.delta === 0 || --initial === 0)) {
          initial = 0;
          ready();
        }
      }
    })().catch(() => {});
    await loaded;
    clearTimeout(fallback);
  }

  stop(): void {
    this.#stop?.();
  }
}
