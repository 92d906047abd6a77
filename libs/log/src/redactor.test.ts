import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { createRedactor, REDACTED } from './redactor.ts';

test('clear leaves addresses and IPs as they are', () => {
  const r = createRedactor({ mode: 'clear' });
  assert.equal(r.address('Alice@Example.org'), 'Alice@Example.org');
  assert.equal(r.ip('192.0.2.1'), '192.0.2.1');
});

test('drop replaces them', () => {
  const r = createRedactor({ mode: 'drop', key: 'ignored' });
  assert.equal(r.address('alice@example.org'), REDACTED);
  assert.equal(r.ip('2001:db8::1'), '[redacted]');
});

test('hash is h: + 16 hex of HMAC-SHA256(key, lower-cased value), stable and keyed', () => {
  const r = createRedactor({ mode: 'hash', key: 'k1' });
  const expected = `h:${createHmac('sha256', 'k1').update('alice@example.org').digest('hex').slice(0, 16)}`;
  assert.equal(r.address('alice@example.org'), expected);
  assert.equal(r.address('Alice@EXAMPLE.org'), expected, 'case does not matter');
  assert.equal(createRedactor({ mode: 'hash', key: 'k1' }).address('alice@example.org'), expected, 'stable');
  assert.notEqual(
    createRedactor({ mode: 'hash', key: 'k2' }).address('alice@example.org'),
    expected,
    'keyed',
  );
  assert.notEqual(r.address('bob@example.org'), expected);
  assert.match(r.ip('192.0.2.1'), /^h:[0-9a-f]{16}$/);
  assert.equal(r.ip('::ffff:192.0.2.1'), r.ip('192.0.2.1'), 'IPv4-mapped IPv6 is the IPv4 address');
  assert.equal(r.ip('2001:DB8::1'), r.ip('2001:db8::1'));
});

test('hash without a key is refused', () => {
  assert.throws(() => createRedactor({ mode: 'hash' }), /needs a key/);
  assert.throws(() => createRedactor({ mode: 'hash', key: '' }), /needs a key/);
});
