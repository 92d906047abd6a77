/** Options the throttle bucket cannot honour fail at start, naming the option. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { assertCredentialOptions } from './option-check.ts';
import type { CredentialOptions, ThrottleOptions } from './types.ts';

const DEFAULT_THROTTLE: ThrottleOptions = {
  maxFailuresPerIp: 20,
  maxFailuresPerUserNetwork: 10,
  maxFailuresPerUser: 50,
  windowSeconds: 900,
  banSeconds: 300,
  maxBanSeconds: 86_400,
};

const ldap = parseConfig(
  {
    domains: { primary: 'sluice.test' },
    routing: { ldap: { urls: ['ldap://127.0.0.1:1'], baseDn: 'dc=x' } },
  },
  'defaults-test',
).routing.ldap!;
const base: CredentialOptions = {
  ldap,
  userAttribute: 'uid',
  passwordAttribute: 'mailPassword',
  refreshIntervalSeconds: 300,
  throttle: DEFAULT_THROTTLE,
};

test('the defaults pass; impossible limits fail naming the option', () => {
  assert.doesNotThrow(() => assertCredentialOptions(base));
  assert.throws(
    () => assertCredentialOptions({ ...base, throttle: { ...DEFAULT_THROTTLE, maxBanSeconds: 7 * 86400 } }),
    /throttle\.maxBanSeconds must be between banSeconds \(300\) and 86400/,
  );
  assert.throws(
    () => assertCredentialOptions({ ...base, throttle: { ...DEFAULT_THROTTLE, maxFailuresPerIp: 0 } }),
    /throttle\.maxFailuresPerIp must be a positive number/,
  );
  assert.throws(
    () =>
      assertCredentialOptions({ ...base, throttle: { ...DEFAULT_THROTTLE, maxFailuresPerUserNetwork: 0 } }),
    /throttle\.maxFailuresPerUserNetwork must be a positive number/,
  );
  assert.throws(
    () => assertCredentialOptions({ ...base, refreshIntervalSeconds: Number.NaN }),
    /refreshIntervalSeconds/,
  );
});
