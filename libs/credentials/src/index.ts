/**
 * @sluice/credentials: authentication for the submission service — password
 * hash verification for the formats directories hold, a credential snapshot
 * synced from LDAP into JetStream KV (hashes only) that keeps authentication
 * working while LDAP is down, and brute-force bans shared by all replicas.
 * The contract is types.ts; docs/submission-auth.md is the operator's view.
 */
export { startAuthenticator } from './authenticator.ts';
export { clientNetwork } from './client-network.ts';
export type { CredentialCache } from './credential-cache.ts';
export { credentialOptionsOf } from './credential-options.ts';
export type { SnapshotMeta } from './credential-records.ts';
export { assertCredentialOptions } from './option-check.ts';
export {
  describeSnapshotUser,
  loadCredentialSnapshot,
  refreshCredentialSnapshot,
  type SnapshotUser,
} from './snapshot-admin.ts';
export {
  isActive,
  liftBans,
  listThrottleEntries,
  type ThrottleEntry,
  type ThrottleFilter,
} from './throttle-admin.ts';
export { attemptKeys, hashName, type ThrottleRecord, type ThrottleScope } from './throttle-records.ts';
export type {
  Authenticator,
  AuthenticatorDeps,
  AuthOutcome,
  AuthRequest,
  CredentialOptions,
  LdapConnection,
  RefreshOutcome,
  ThrottleOptions,
} from './types.ts';
export {
  type CheckResult,
  checkPassword,
  hashFormat,
  type VerifyOptions,
  verifyPassword,
} from './verify-password.ts';
