/**
 * The contract of @sluice/credentials with the submission service
 * (_brief/SUBMISSION-IFACES.md): what an authentication attempt asks and
 * answers, and the options the service maps from its `submission.auth`
 * config. `refused` is deliberately one answer for a wrong password, an
 * unknown user, an empty password and a mismatched authorization identity
 * (RFC 4954 §6: 535 5.7.8), so a client learns nothing about which it was.
 */
import type { AuthBuckets } from '@sluice/bus';
import type { SluiceConfig } from '@sluice/config';
import type { Logger } from '@sluice/log';
import type { Metrics } from '@sluice/telemetry';

export type AuthOutcome =
  | { kind: 'ok'; user: string }
  | { kind: 'refused' }
  /** The client network, or this user from this network, is banned (decision 0040). */
  | { kind: 'banned'; retryAfterSeconds: number; scope?: 'ip' | 'user-network' }
  /** Too many failures for this user from everywhere: 454 4.7.0 until the window is over (not a ban). */
  | { kind: 'throttled'; retryAfterSeconds: number }
  | { kind: 'unavailable' };

export interface AuthRequest {
  username: string;
  password: string;
  /** SASL PLAIN authorization identity (RFC 4616 §2); absent or empty: the user itself. */
  authzid?: string;
  clientIp: string;
}

export interface Authenticator {
  authenticate(req: AuthRequest): Promise<AuthOutcome>;
  /** Read LDAP into the snapshot now (`force`: apply even a refresh the deletion guard holds back). */
  refresh(force?: boolean): Promise<RefreshOutcome>;
  close(): Promise<void>;
}

export type RefreshOutcome = 'applied' | 'unchanged' | 'held' | 'failed' | 'raced';

export type LdapConnection = NonNullable<SluiceConfig['routing']['ldap']>;

export interface ThrottleOptions {
  /** Failures from one client address (IPv6: one /64) within the window before it is banned. */
  maxFailuresPerIp: number;
  /** Failures for one user from one client network within the window before the user is banned from that network. */
  maxFailuresPerUserNetwork: number;
  /**
   * Failures for one user from anywhere within the window before the user is
   * braked (454 4.7.0 until the window is over) except from the networks the
   * user logged in from within the last day: the brake on distributed guessing.
   */
  maxFailuresPerUser: number;
  windowSeconds: number;
  /** The first ban (ip, user-network); each further ban of the same key doubles it, up to maxBanSeconds. */
  banSeconds: number;
  /** At most 86400: the throttle bucket forgets a key a day after its last write. */
  maxBanSeconds: number;
}

export interface CredentialOptions {
  /** Same connection keys as routing.ldap (urls, bindDn, bindPassword, baseDn, filter, startTls, caFile, timeout, maxDeleteShare). */
  ldap: LdapConnection;
  /** Attribute holding the user id (default 'uid'). */
  userAttribute: string;
  /** Attribute holding the password hash (default 'mailPassword'). */
  passwordAttribute: string;
  /** Extra LDAP filter ANDed with ldap.filter, e.g. (!(accountStatus=disabled)). */
  userFilter?: string;
  /** Attributes whose values are also login names (full addresses), default ['mail']; [] for none. */
  loginAttributes?: string[];
  /** Domains where "uid@domain" logs in as uid (e.g. the primary domain and its aliases). */
  loginDomains?: string[];
  /** Accept {PLAIN}/{CLEARTEXT}/untagged values in the directory (default false). */
  allowCleartext?: boolean;
  refreshIntervalSeconds: number;
  throttle: ThrottleOptions;
}

export interface AuthenticatorDeps {
  /** bus.authBuckets(): the credential snapshot and throttle buckets. */
  kv: AuthBuckets;
  log: Logger;
  /** The process' Prometheus registry (ctx.metrics.registry). */
  registry: Metrics['registry'];
  /** Clock (tests). */
  now?: () => number;
}
