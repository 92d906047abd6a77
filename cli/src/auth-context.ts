/**
 * What every `sluice auth` subcommand works with: the two buckets of the
 * submission's authentication (credential snapshot, throttle), the options
 * the running service uses (from the same config), where to write, and the
 * clock. Built by auth-command.ts; each subcommand is its own module.
 */
import type { AuthBuckets } from '@sluice/bus';
import type { CredentialOptions } from '@sluice/credentials';
import type { CommandIo } from './srs-command.ts';

export interface AuthContext {
  kv: AuthBuckets;
  opts: CredentialOptions;
  io: CommandIo;
  json: boolean;
  now: () => number;
}
