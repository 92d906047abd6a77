/**
 * The submission service as `sluice run` starts it: the service of
 * submission-service.ts with its authenticator from @sluice/credentials.
 *
 * TEMPORARY until @sluice/credentials is merged: the stand-in authenticator
 * accepts nobody (454 4.7.0 to every AUTH), and says so in the log at start.
 */
import type { ServiceDefinition } from '@sluice/runtime';
import { unavailableAuthenticator } from './credential-port.ts';
import { submissionServiceWith } from './submission-service.ts';

export const submissionService: ServiceDefinition = submissionServiceWith({
  startAuthenticator: async (ctx) => {
    ctx.log.error('submission: @sluice/credentials is not built in yet: every AUTH is answered 454 4.7.0');
    return unavailableAuthenticator;
  },
});
