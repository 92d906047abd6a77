/**
 * The submission service as `sluice run` starts it: the service of
 * submission-service.ts with its authenticator from @sluice/credentials
 * (LDAP hashes in a KV snapshot, brute-force bans shared by replicas;
 * docs/submission-auth.md), configured from `submission.auth`.
 */
import { credentialOptionsOf, startAuthenticator } from '@sluice/credentials';
import type { ServiceDefinition } from '@sluice/runtime';
import { submissionServiceWith } from './submission-service.ts';

export { credentialOptionsOf };

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
