/**
 * The credentials library's options from a Sluice config: `submission.auth`,
 * with routing.ldap as the directory when it names none of its own. One
 * mapping for the submission service and for `sluice auth` (which reads the
 * same snapshot and bans), so both agree on login domains and limits.
 */
import type { SluiceConfig } from '@sluice/config';
import type { UserQuery } from './ldap-users.ts';
import type { CredentialOptions } from './types.ts';

/** submission.auth (and routing.ldap when it has no directory of its own) as the credentials library's options. */
export function credentialOptionsOf(config: SluiceConfig): CredentialOptions {
  const auth = config.submission?.auth;
  const ldap = auth?.ldap ?? config.routing.ldap;
  if (!auth || !ldap) throw new Error('submission.auth.ldap (or routing.ldap) is not configured');
  return {
    ldap,
    userAttribute: auth.userAttribute,
    passwordAttribute: auth.passwordAttribute,
    ...(auth.userFilter ? { userFilter: auth.userFilter } : {}),
    loginDomains: [config.domains.primary, ...config.domains.aliases],
    refreshIntervalSeconds: auth.refreshInterval,
    throttle: {
      maxFailuresPerIp: auth.throttle.maxFailuresPerIp,
      maxFailuresPerUserNetwork: auth.throttle.maxFailuresPerUserNetwork,
      maxFailuresPerUser: auth.throttle.maxFailuresPerUser,
      windowSeconds: auth.throttle.window,
      banSeconds: auth.throttle.ban,
      maxBanSeconds: auth.throttle.maxBan,
    },
  };
}

/** What a refresh asks the directory for (credential-sync.ts), from the options. */
export function userQueryOf(opts: CredentialOptions): UserQuery {
  return {
    userAttribute: opts.userAttribute,
    passwordAttribute: opts.passwordAttribute,
    userFilter: opts.userFilter,
    loginAttributes: opts.loginAttributes ?? ['mail'],
  };
}
