/** The RCPT tarpit's rule: off at delay 0, slowed after N unknown recipients or for listed networks. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tarpitDelay } from './tarpit.ts';

test('off at delay 0, whatever the client did', () => {
  const off = tarpitDelay({ delay: 0, afterUnknownRecipients: 0, networks: ['0.0.0.0/0'] });
  assert.equal(off({ ip: '192.0.2.1', unknownBefore: 50 }), 0);
});

test('slowed once a session had afterUnknownRecipients unknown ones, and always for listed networks', () => {
  const pause = tarpitDelay({
    delay: 2.5,
    afterUnknownRecipients: 3,
    networks: ['198.51.100.0/24', '2001:db8::/32'],
  });
  assert.equal(pause({ ip: '192.0.2.1', unknownBefore: 2 }), 0);
  assert.equal(pause({ ip: '192.0.2.1', unknownBefore: 3 }), 2500);
  assert.equal(pause({ ip: '198.51.100.77', unknownBefore: 0 }), 2500);
  assert.equal(pause({ ip: '2001:db8::5', unknownBefore: 0 }), 2500);
});

test('a bad network fails at start, naming the key', () => {
  assert.throws(
    () => tarpitDelay({ delay: 1, afterUnknownRecipients: 3, networks: ['10.0.0.0/33'] }),
    /ingress\.tarpit\.networks: "10\.0\.0\.0\/33" is not an address or CIDR/,
  );
});
