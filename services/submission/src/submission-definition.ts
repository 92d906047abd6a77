/**
 * The submission service as `sluice run` starts it: the service of
 * submission-service.ts with its authenticator from @sluice/credentials
 * (LDAP hashes in a KV snapshot, brute-force bans shared by replicas;
 * docs/submission-auth.md), configured from `submission.auth`.
 *
 * Both are loaded when the service starts with a `submission:` section, not
 * with this module: without one (an MX-only config) the process never loads
 * the service, the credential store, the password hashes or the autoconfig
 * server (docs/decisions/0045). `sluice run` imports this module alone
 * (`@sluice/submission/definition`), not the package index.
 */
import type { RunningService, ServiceContext, ServiceDefinition } from '@sluice/runtime';
import { submissionOff } from './submission-off.ts';

export const submissionService: ServiceDefinition = {
  name: 'submission',
  async start(ctx: ServiceContext): Promise<RunningService> {
    if (!ctx.config.submission) return submissionOff(ctx);
    const [{ submissionServiceWith }, { credentialOptionsOf, startAuthenticator }] = await Promise.all([
      import('./submission-service.ts'),
      import('@sluice/credentials'),
    ]);
    const service = submissionServiceWith({
      startAuthenticator: async (c) =>
        startAuthenticator(
          {
            kv: await c.bus.authBuckets(),
            log: c.log.child({ component: 'credentials' }),
            registry: c.metrics.registry,
          },
          credentialOptionsOf(c.config),
        ),
    });
    return service.start(ctx);
  },
};
