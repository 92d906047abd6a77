/**
 * The submission service as `sluice run` starts it: the service of
 * submission-service.ts with its authenticator from @sluice/credentials
 * (LDAP hashes in a KV snapshot, brute-force bans shared by replicas;
 * docs/submission-auth.md), configured from `submission.auth`.
 */
import type { SluiceConfig } from '@sluice/config';
import { type CredentialOptions, startAuthenticator } from '@sluice/credentials';
import type { ServiceDefinition } from '@sluice/runtime';
import { submissionServiceWith } from './submission-service.ts';

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

export const submissionService: ServiceDefinition = submissionServiceWith({
  startAuthenticator: async (ctx) =>
    startAuthenticator(
      {
        kv: await ctx.bus.authBuckets(),
        log: ctx.log.child({ component: 'credentials' }),
        registry: ctx.metrics.registry,
      },
      credentialOptionsOf(ctx.config),
    ),
});
