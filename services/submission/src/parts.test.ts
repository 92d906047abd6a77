/**
 * The plain functions of the submission service: the From header reader,
 * own-address and relay-domain rules, the auth reply mapping, the relay
 * certificate match, and the config section's fail-fast messages.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { authFailure } from './auth-replies.ts';
import { fromAddresses } from './header-from.ts';
import { counterKey } from './rate-limiter.ts';
import { matchRelayClient } from './relay-clients.ts';
import { checkRelaySender, isOwnAddress } from './sender-rules.ts';

const head = (s: string) => new TextEncoder().encode(s);

describe('fromAddresses', () => {
  test('display names, comments and quoted strings do not hide or fake an address', () => {
    assert.deepEqual(
      fromAddresses(head('From: "Bob <bob@evil.example>, x" <Alice@Example.org>\r\n\r\nbody')),
      {
        ok: true,
        addresses: ['alice@example.org'],
      },
    );
    assert.deepEqual(fromAddresses(head('From: alice@example.org (Alice, <ceo@example.org>)\r\n\r\n')), {
      ok: true,
      addresses: ['alice@example.org'],
    });
  });

  test('every author of a folded, multi-mailbox From is returned; no From or an unreadable one is said so', () => {
    assert.deepEqual(fromAddresses(head('Subject: x\r\nFrom: a@example.org,\r\n b@example.org\r\n\r\n')), {
      ok: true,
      addresses: ['a@example.org', 'b@example.org'],
    });
    assert.deepEqual(fromAddresses(head('Subject: x\r\n\r\nFrom: a@example.org\r\n')), {
      ok: false,
      why: 'none',
    });
    assert.deepEqual(fromAddresses(head('From: undisclosed\r\n\r\n')), { ok: false, why: 'unreadable' });
  });
});

describe('sender rules without the resolver', () => {
  const p = { domains: ['example.org', 'example.com'], plusSeparator: '+' };
  test('own address: login@ each of our domains, with a +tag; not another domain, not a prefix', () => {
    assert.ok(isOwnAddress('alice', 'Alice@example.com', p));
    assert.ok(isOwnAddress('alice', 'alice+lists@example.org', p));
    assert.ok(!isOwnAddress('alice', 'alice@example.net', p));
    assert.ok(!isOwnAddress('alice', 'alicex@example.org', p));
  });

  test('relay clients: only their sender domains, the null sender at MAIL FROM only', () => {
    const crm = { name: 'crm', senderDomains: ['news.example.org'] };
    assert.ok(checkRelaySender(crm, 'offers@news.example.org', 'mail-from').ok);
    assert.ok(checkRelaySender(crm, '', 'mail-from').ok);
    const no = checkRelaySender(crm, 'ceo@example.org', 'header-from');
    assert.ok(!no.ok && no.error.code === 550 && no.error.enhanced === '5.7.1');
  });
});

test('auth outcomes: refused 535 5.7.8, banned 454 or 421 4.7.0, unavailable 454 4.7.0 (never 535)', () => {
  assert.equal(authFailure({ kind: 'ok', user: 'a' }, '454'), undefined);
  assert.equal(authFailure({ kind: 'refused' }, '454')?.line, '535 5.7.8 Authentication credentials invalid');
  assert.equal(authFailure({ kind: 'banned', retryAfterSeconds: 9 }, '454')?.code, 454);
  assert.equal(authFailure({ kind: 'banned', retryAfterSeconds: 9 }, '421')?.code, 421);
  assert.equal(authFailure({ kind: 'unavailable' }, '421')?.line.slice(0, 9), '454 4.7.0');
});

test('relay certificate match: a pinned fingerprint wins; CN only for entries without one', () => {
  const fp = 'ab'.repeat(32);
  const clients = [
    {
      name: 'pinned',
      fingerprintSha256: fp,
      subjectCn: 'crm',
      senderDomains: ['a.example'],
      rateClass: 'default' as const,
    },
    { name: 'by-cn', subjectCn: 'crm', senderDomains: ['b.example'], rateClass: 'bulk' as const },
  ];
  const colons = fp.toUpperCase().match(/../g)!.join(':');
  assert.equal(matchRelayClient({ fingerprint256: colons, subject: { CN: 'x' } }, clients)?.name, 'pinned');
  assert.equal(matchRelayClient({ fingerprint256: 'CD:EF', subject: { CN: 'crm' } }, clients)?.name, 'by-cn');
  assert.equal(matchRelayClient({ fingerprint256: 'CD:EF', subject: { CN: 'other' } }, clients), undefined);
});

test('rate counter keys are KV-safe whatever the login holds', () => {
  assert.match(counterKey('user', 'wéird name@x', 'hour', 123), /^user\.[0-9a-f]{32}\.hour\.123$/);
});

describe('config: submission fails fast naming the key and the fix', () => {
  const base = { domains: { primary: 'example.org' } };
  const problems = (submission: unknown, extra: object = {}) => {
    try {
      parseConfig({ ...base, ...extra, submission }, 't');
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  };
  const ldap = { routing: { ldap: { urls: ['ldap://x'], baseDn: 'dc=x' } } };
  test('no certificate: AUTH needs TLS', () => {
    assert.match(problems({}, ldap), /submission\.tls\.certFile: missing: AUTH needs TLS/);
  });
  test('no directory for the credentials', () => {
    assert.match(
      problems({ tls: { selfSigned: true } }),
      /submission\.auth\.ldap: missing: .*set submission\.auth\.ldap, or routing\.ldap/,
    );
  });
  test('a relay client known by nothing', () => {
    const relay = {
      listen: [{ port: 0 }],
      caFile: '/x',
      clients: [{ name: 'x', senderDomains: ['a.example'] }],
    };
    assert.match(
      problems({ tls: { selfSigned: true }, relay }, ldap),
      /needs fingerprintSha256 or subjectCn/,
    );
  });
  test('a valid section parses with its defaults', () => {
    assert.equal(problems({ tls: { selfSigned: true } }, ldap), '');
  });
});
