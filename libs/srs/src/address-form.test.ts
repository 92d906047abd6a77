/** Internal (unquoted) and external (quoted where needed) forms round-trip. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { externalLocalPart, toExternalForm, toInternalForm } from './address-form.ts';

test('quoted local parts are unquoted for SRS and quoted again after', () => {
  assert.equal(toInternalForm('"john doe"@x.test'), 'john doe@x.test');
  assert.equal(toInternalForm('"a\\"b"@x.test'), 'a"b@x.test');
  assert.equal(toInternalForm('plain.user@x.test'), 'plain.user@x.test');
  assert.equal(toExternalForm('john doe@x.test'), '"john doe"@x.test');
  assert.equal(toExternalForm('a"b@x.test'), '"a\\"b"@x.test');
  assert.equal(toExternalForm('SRS0=Ab+/=ZZ=x.test=u@srs.test'), 'SRS0=Ab+/=ZZ=x.test=u@srs.test');
  assert.equal(externalLocalPart('a..b'), '"a..b"');
  for (const a of ['"john doe"@x.test', 'u@x.test', '"a\\\\b"@x.test'])
    assert.equal(toExternalForm(toInternalForm(a)), a);
});
