/**
 * The one check of the options the library makes itself (the defaults and
 * key names are the submission's `submission.auth` config schema): limits
 * the throttle bucket cannot honour fail at start, naming the option.
 */
import { authThrottleTtlMs } from '@sluice/proto';
import type { CredentialOptions } from './types.ts';

/** Throw, naming the option and the fix, when the options cannot work. */
export function assertCredentialOptions(o: CredentialOptions): void {
  const t = o.throttle;
  const positive: Array<[string, number]> = [
    ['refreshIntervalSeconds', o.refreshIntervalSeconds],
    ['throttle.maxFailuresPerIp', t.maxFailuresPerIp],
    ['throttle.maxFailuresPerUserNetwork', t.maxFailuresPerUserNetwork],
    ['throttle.maxFailuresPerUser', t.maxFailuresPerUser],
    ['throttle.windowSeconds', t.windowSeconds],
    ['throttle.banSeconds', t.banSeconds],
  ];
  for (const [name, v] of positive) {
    if (!(Number.isFinite(v) && v > 0))
      throw new Error(`credentials: ${name} must be a positive number, got ${v}`);
  }
  const maxBan = authThrottleTtlMs / 1000;
  if (!(t.maxBanSeconds >= t.banSeconds && t.maxBanSeconds <= maxBan)) {
    throw new Error(
      `credentials: throttle.maxBanSeconds must be between banSeconds (${t.banSeconds}) and ${maxBan} (the throttle bucket forgets a record a day after its last write), got ${t.maxBanSeconds}`,
    );
  }
  if (t.windowSeconds * 1000 > authThrottleTtlMs) {
    throw new Error(`credentials: throttle.windowSeconds must be at most ${maxBan}, got ${t.windowSeconds}`);
  }
}
