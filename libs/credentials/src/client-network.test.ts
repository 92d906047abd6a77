/** Client networks counted by the throttle, and the decoy hash unknown logins are checked against. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientNetwork } from './client-network.ts';
import { alteredHash, decoyHash } from './decoy-hash.ts';
import { makeHash } from './hash-fixtures.ts';
import { checkPassword, hashFormat } from './verify-password.ts';

test('IPv4 counts per address, IPv6 per /64, IPv4-mapped as IPv4', () => {
  assert.equal(clientNetwork('192.0.2.7'), '192.0.2.7');
  assert.equal(clientNetwork('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(clientNetwork('2001:db8:1:2::66'), '2001:db8:1:2::/64');
  assert.equal(clientNetwork('2001:DB8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.equal(clientNetwork('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientNetwork('::1'), '0:0:0:0::/64');
  assert.equal(clientNetwork('fe80::1%eth0'), 'fe80:0:0:0::/64');
});

test('the decoy has the most common format (same cost) and matches not even the sample password', async () => {
  const users = [
    { uid: 'a', hashes: [await makeHash('CRYPT-2y', 'pw-a')], logins: [] },
    { uid: 'b', hashes: [await makeHash('CRYPT-2y', 'pw-b')], logins: [] },
    { uid: 'c', hashes: [await makeHash('SSHA', 'pw-c')], logins: [] },
  ];
  const decoy = decoyHash(users);
  assert.equal(hashFormat(decoy), 'CRYPT-2y');
  assert.equal(decoy.slice(0, 29), users[0]!.hashes[0]!.slice(0, 29), 'same cost and salt');
  assert.equal(await checkPassword(decoy, 'pw-a'), 'mismatch');
  const ssha = alteredHash(users[2]!.hashes[0]!);
  assert.equal(await checkPassword(ssha, 'pw-c'), 'mismatch');
  assert.equal(hashFormat(decoyHash([])), 'SSHA');
});
