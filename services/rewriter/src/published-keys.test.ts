/**
 * The DNS check of active DKIM keys against a real DNS server on loopback:
 * a published matching record passes, another key or no record sets the key
 * aside (and signing then leaves mail unsigned with its reason), a DNS
 * failure changes nothing, and publishing the right record puts the key back.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { buildKeyring, dkimTxtRecord } from '@sluice/dkim';
import { type DnsServer, startDnsServer } from '@sluice/test-harness';
import { type KeyDnsCheck, monitorPublishedKeys, txtResolver } from './published-keys.ts';

const pem = (t: 'rsa' | 'ed25519') =>
  (t === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ed25519')
  ).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;

const ring = buildKeyring([
  { domain: 'example.org', selector: 'r1', privateKey: pem('rsa'), active: true },
  { domain: 'example.org', selector: 'e1', privateKey: pem('ed25519'), active: true },
  { domain: 'example.com', selector: 'r1', privateKey: pem('rsa'), active: true },
  { domain: 'example.com', selector: 'old', privateKey: pem('rsa'), active: false },
]);
const other = buildKeyring([{ domain: 'x.test', selector: 'z', privateKey: pem('rsa'), active: true }])
  .keys[0]!;
const [orgRsa, orgEd, comRsa] = ring.keys as [typeof other, typeof other, typeof other];

describe('published key check', () => {
  let dns: DnsServer;
  before(async () => {
    dns = await startDnsServer([
      { name: 'r1._domainkey.example.org', type: 'TXT', data: dkimTxtRecord(orgRsa) },
      // The Ed25519 selector publishes someone else's key; example.com publishes nothing.
      { name: 'e1._domainkey.example.org', type: 'TXT', data: dkimTxtRecord(other) },
    ]);
  });
  after(() => dns?.stop());

  test('match, mismatch and missing; only active keys are checked; a fixed record puts the key back', async () => {
    const seen: KeyDnsCheck[] = [];
    const m = monitorPublishedKeys({
      keys: ring.keys,
      resolveTxt: txtResolver([dns.address], 2),
      intervalSeconds: 0,
      onCheck: (c) => seen.push(c),
    });
    const first = await m.checkNow();
    assert.deepEqual(
      first.map((c) => [c.key.name, c.status]),
      [
        [orgRsa.name, 'match'],
        [orgEd.name, 'mismatch'],
        [comRsa.name, 'missing'],
      ],
    );
    assert.equal(seen.length, 3);
    assert.deepEqual([...m.setAside].map((k) => k.name).sort(), [orgEd.name, comRsa.name].sort());

    dns.set([
      { name: 'r1._domainkey.example.org', type: 'TXT', data: dkimTxtRecord(orgRsa) },
      { name: 'e1._domainkey.example.org', type: 'TXT', data: dkimTxtRecord(orgEd) },
    ]);
    await m.checkNow();
    assert.deepEqual(
      [...m.setAside].map((k) => k.name),
      [comRsa.name],
    );
    m.stop();
  });

  test('a DNS failure keeps the last answer', async () => {
    const m = monitorPublishedKeys({
      keys: [orgRsa],
      resolveTxt: async () => {
        throw Object.assign(new Error('timeout'), { code: 'ETIMEOUT' });
      },
      intervalSeconds: 0,
      onCheck: () => {},
    });
    const [c] = await m.checkNow();
    assert.equal(c?.status, 'dns-error');
    assert.equal(m.setAside.size, 0);
  });
});
