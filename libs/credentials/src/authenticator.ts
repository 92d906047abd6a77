/**
 * The submission authenticator: answers one SASL PLAIN/LOGIN attempt from
 * the credential snapshot in memory (credential-cache.ts), with the brute-force
 * counters shared by all replicas (auth-throttle.ts), and keeps the snapshot
 * fresh from LDAP (credential-sync.ts) on refreshIntervalSeconds.
 *
 * Order of the checks, and why:
 * 1. An empty password is refused before anything else: an LDAP simple bind
 *    with an empty password is an unauthenticated bind that "succeeds"
 *    (RFC 4513 §5.1.2), the classic hole this rules out by construction.
 * 2. An authorization identity other than the user (RFC 4616 §2: PLAIN's
 *    authzid) is refused: nobody may act as someone else here.
 * 3. No snapshot at all (LDAP never reached): unavailable (454 4.7.0), never
 *    "wrong password".
 * 4. A banned client network, or this user banned from this network: banned;
 *    this user braked (too many failures from everywhere) and the network is
 *    not one of its usual ones: throttled (decision 0040) — either way
 *    without checking the password.
 * 5. The password is checked against the user's hashes, or against a decoy
 *    hash of the same cost when the login is unknown (decoy-hash.ts), so
 *    "unknown user" and "wrong password" give the same answer in similar time.
 * 6. A failure counts against the client network, the user on that network
 *    and the user everywhere (auth-throttle.ts); a success clears the user's
 *    count on that network only, and marks the network usual.
 * Every outcome is counted (sluice_submission_auth_total{outcome}); each ban
 * or brake is logged once at warn when imposed and once when found over,
 * with the network and the user's hash (the uid too when it is a known user).
 * Passwords and hashes are never logged; a failed login name is logged only
 * when it names a known user (a mistyped password in the user field stays out).
 */
import { authMetrics } from '@sluice/telemetry';
import { AuthThrottle } from './auth-throttle.ts';
import { clientNetwork } from './client-network.ts';
import { CredentialCache } from './credential-cache.ts';
import { userQueryOf } from './credential-options.ts';
import { refreshCredentials } from './credential-sync.ts';
import { decoyHash } from './decoy-hash.ts';
import type { DirectoryUser, readUsers } from './ldap-users.ts';
import { assertCredentialOptions } from './option-check.ts';
import { attemptKeys, hashName } from './throttle-records.ts';
import type {
  Authenticator,
  AuthenticatorDeps,
  AuthOutcome,
  AuthRequest,
  CredentialOptions,
  RefreshOutcome,
} from './types.ts';
import { checkPassword, hashFormat } from './verify-password.ts';

/**
 * How long an attempt waits for the throttle bucket. While NATS is away a KV
 * read would wait for the whole request timeout (10 s by default) and the
 * client with it; past this bound the answer is unavailable (454) at once.
 */
export const THROTTLE_TIMEOUT_MS = 3000;

function withinMs<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`auth throttle: ${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export async function startAuthenticator(
  deps: AuthenticatorDeps & { readUsers?: typeof readUsers },
  opts: CredentialOptions,
): Promise<Authenticator> {
  assertCredentialOptions(opts);
  const { log, kv } = deps;
  const now = deps.now ?? Date.now;
  const metrics = authMetrics(deps.registry);
  const cache = new CredentialCache(opts.loginDomains);
  let decoy: string | undefined;
  cache.onChange(() => {
    decoy = undefined;
    metrics.snapshotUsers.set(cache.size);
    metrics.setSnapshotTime(cache.meta?.fetchedAt);
  });
  await cache.start(kv.credentials);
  const throttle = new AuthThrottle(kv.throttle, opts.throttle, now);
  const warned = new Set<string>();

  const syncDeps = {
    kv: kv.credentials,
    cache,
    log,
    metrics,
    ldap: opts.ldap,
    query: userQueryOf(opts),
    now,
    read: deps.readUsers,
  };
  let running: Promise<RefreshOutcome> | undefined;
  const refresh = (force = false): Promise<RefreshOutcome> => {
    running ??= refreshCredentials(syncDeps, force)
      .catch((err: unknown): RefreshOutcome => {
        log.error({ err }, 'credential refresh could not write the snapshot: the one in use keeps serving');
        return 'failed';
      })
      .then((outcome) => {
        metrics.refreshes.inc({ outcome });
        return outcome;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  // Without a snapshot nobody can log in: wait for the first read. With one, serve it at once.
  if (cache.loaded) void refresh();
  else await refresh();

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (stopped) return;
    // Without any snapshot nobody can log in: try LDAP again soon, not a whole interval later.
    const delaySeconds = cache.loaded
      ? opts.refreshIntervalSeconds
      : Math.min(opts.refreshIntervalSeconds, 15);
    timer = setTimeout(() => {
      // Another replica refreshed less than half an interval ago: LDAP need not be read again.
      const fetched = cache.meta?.fetchedAt ?? 0;
      const fresh = now() - fetched < (opts.refreshIntervalSeconds * 1000) / 2;
      void (fresh ? Promise.resolve() : refresh()).finally(schedule);
    }, delaySeconds * 1000);
    timer.unref();
  };
  schedule();

  const answer = (outcome: AuthOutcome): AuthOutcome => {
    metrics.attempts.inc({ outcome: outcome.kind });
    return outcome;
  };

  const verify = async (user: DirectoryUser | undefined, password: string): Promise<boolean> => {
    decoy ??= decoyHash(cache.users.values());
    let matched = false;
    for (const stored of user?.hashes ?? [decoy]) {
      const result = await checkPassword(stored, password, { allowCleartext: opts.allowCleartext });
      if (result === 'match') matched = true;
      if (result === 'unknown-scheme' && user && !warned.has(user.uid)) {
        warned.add(user.uid);
        log.warn(
          { user: user.uid, format: hashFormat(stored) },
          'password hash in a format Sluice does not verify (or refuses): this user cannot log in',
        );
      }
      if (matched) break;
    }
    return matched && user !== undefined;
  };

  const sameLogin = (a: string, b: string): boolean => {
    if (a.trim().toLowerCase() === b.trim().toLowerCase()) return true;
    const ua = cache.lookup(a);
    return ua !== undefined && ua === cache.lookup(b);
  };

  // "Ban over" notes run beside the attempt (they must not delay it); close() waits for them.
  const notes = new Set<Promise<void>>();
  const note = (p: Promise<void>) => {
    notes.add(p);
    void p.finally(() => notes.delete(p));
  };

  const attempt = async (req: AuthRequest): Promise<AuthOutcome> => {
    if (req.password.length === 0) return answer({ kind: 'refused' });
    if (req.authzid && !sameLogin(req.authzid, req.username)) return answer({ kind: 'refused' });
    if (!cache.loaded) return answer({ kind: 'unavailable' });
    const user = cache.lookup(req.username);
    const userName = user ? user.uid.toLowerCase() : req.username.trim().toLowerCase();
    const network = clientNetwork(req.clientIp);
    const keys = attemptKeys(network, userName);
    // Logged with the ban: the network and the user's hash (the key part), the uid only when known.
    const who = { network, userHash: hashName(userName), ...(user ? { user: user.uid } : {}) };
    try {
      const { block, over } = await withinMs(throttle.check(keys), THROTTLE_TIMEOUT_MS, 'ban check');
      for (const scope of over)
        note(
          throttle.endBan(scope, keys[scope]).then(
            (e) => void (e && log.warn({ ...who, scope, bans: e.bans }, `authentication ban over: ${scope}`)),
            (err: unknown) => log.warn({ err }, 'auth throttle: end of a ban not noted'),
          ),
        );
      if (block?.scope === 'user')
        return answer({ kind: 'throttled', retryAfterSeconds: block.retryAfterSeconds });
      if (block)
        return answer({ kind: 'banned', retryAfterSeconds: block.retryAfterSeconds, scope: block.scope });
    } catch (err) {
      log.error({ err }, 'auth throttle bucket unreadable: answering unavailable');
      return answer({ kind: 'unavailable' });
    }
    if (await verify(user, req.password)) {
      await withinMs(throttle.succeed(keys), THROTTLE_TIMEOUT_MS, 'success note').catch((err) =>
        log.warn({ err }, 'auth throttle: success not noted'),
      );
      return answer({ kind: 'ok', user: user!.uid });
    }
    try {
      const bans = await withinMs(throttle.fail(keys), THROTTLE_TIMEOUT_MS, 'failure count');
      for (const b of bans) {
        metrics.bans.inc({ scope: b.scope });
        log.warn(
          { ...who, scope: b.scope, seconds: b.seconds, failures: b.failures, bans: b.bans },
          b.scope === 'user'
            ? `authentication failures from many networks: user braked for ${b.seconds} s (454 except from its usual networks)`
            : `authentication failures: ${b.scope} banned for ${b.seconds} s`,
        );
      }
    } catch (err) {
      log.error({ err }, 'auth throttle: failure not counted');
    }
    return answer({ kind: 'refused' });
  };

  return {
    async authenticate(req: AuthRequest): Promise<AuthOutcome> {
      // Whatever goes wrong inside (a hash library throwing), the attempt is answered and counted.
      return attempt(req).catch((err: unknown) => {
        log.error({ err }, 'authentication attempt failed: answering unavailable');
        return answer({ kind: 'unavailable' });
      });
    },
    refresh,
    async close() {
      stopped = true;
      clearTimeout(timer);
      cache.stop();
      await running;
      await Promise.all(notes);
    },
  };
}
