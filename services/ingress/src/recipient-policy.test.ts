import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkRecipient, encodeLookupRequest, lookupDecision, ourDomains } from './recipient-policy.ts';

const domains = ourDomains('example.org', ['example.com', 'xn--bcher-kva.example']);
const json = (v: unknown) => ({ data: new TextEncoder().encode(JSON.stringify(v)) });

function refusedWith(address: string, line: RegExp, reason?: string) {
  const r = checkRecipient(address, domains);
  assert.equal(r.kind, 'refuse', address);
  if (r.kind === 'refuse') {
    assert.match(r.error.line, line, address);
    if (reason) assert.equal(r.reason, reason, address);
  }
}

describe('checkRecipient: never an open relay', () => {
  test('our primary and alias domains go to the lookup, canonical and case-insensitive', () => {
    for (const [given, canonical] of [
      ['alice@example.org', 'alice@example.org'],
      ['Alice@EXAMPLE.com', 'Alice@example.com'],
      ['"alice"@example.org', 'alice@example.org'],
      ['user@Bücher.example', 'user@xn--bcher-kva.example'],
    ]) {
      const r = checkRecipient(given!, domains);
      assert.equal(r.kind, 'lookup', given);
      if (r.kind === 'lookup') assert.equal(r.mailbox.address, canonical);
    }
  });

  test('the domainless postmaster is ours (RFC 5321 §4.1.1.3)', () => {
    const r = checkRecipient('Postmaster', domains);
    assert.equal(r.kind, 'lookup');
    if (r.kind === 'lookup') assert.equal(r.mailbox.address, 'postmaster@example.org');
  });

  test('other domains, address literals and routing syntax: 554 5.7.1', () => {
    refusedWith('victim@elsewhere.test', /^554 5\.7\.1 Relay access denied$/, 'relay');
    refusedWith('alice@sub.example.org', /^554 5\.7\.1/, 'relay');
    refusedWith('user@[192.0.2.1]', /^554 5\.7\.1/, 'address-literal');
    refusedWith('user@[IPv6:2001:db8::1]', /^554 5\.7\.1/, 'address-literal');
    refusedWith('user%elsewhere.test@example.org', /^554 5\.7\.1/, 'routing-syntax');
    refusedWith('elsewhere.test!user@example.org', /^554 5\.7\.1/, 'routing-syntax');
    // A quoted local part with "@" is the domain after the last "@": ours, but quoted "@" still relays nothing.
    refusedWith('"user@elsewhere.test"@elsewhere.test', /^554 5\.7\.1/, 'relay');
  });

  test('addresses that are not RFC 5321 mailboxes: 501 5.1.3', () => {
    refusedWith('user..x@example.org', /^501 5\.1\.3 /, 'syntax');
    refusedWith('@relay.test:user@example.org', /^501 5\.1\.3 /, 'syntax');
    refusedWith('jöran@example.org', /^501 5\.1\.3 /, 'syntax');
    assert.equal(checkRecipient('jöran@example.org', domains, { smtputf8: true }).kind, 'lookup');
  });
});

describe('lookupDecision: the resolver decides, failures never accept', () => {
  test('ok accepts; unknown 550 5.1.1; foreign 554 5.7.1; tempfail 451 4.3.0', () => {
    assert.deepEqual(lookupDecision(json({ v: 1, result: 'ok', targets: ['a@b'] })), { kind: 'accept' });
    const cases: Array<[string, RegExp]> = [
      ['unknown', /^550 5\.1\.1 /],
      ['foreign', /^554 5\.7\.1 /],
      ['tempfail', /^451 4\.3\.0 /],
    ];
    for (const [result, line] of cases) {
      const d = lookupDecision(json({ v: 1, result }));
      assert.equal(d.kind, 'refuse');
      if (d.kind === 'refuse') assert.match(d.error.line, line, result);
    }
  });

  test('a timeout, no responders, garbage or a wrong shape: 451 4.3.0', () => {
    for (const answer of [
      { error: new Error('timeout') },
      { data: new TextEncoder().encode('not json') },
      json({ v: 2, result: 'ok' }),
      json({ v: 1, result: 'maybe' }),
    ]) {
      const d = lookupDecision(answer);
      assert.equal(d.kind, 'refuse');
      if (d.kind === 'refuse') assert.match(d.error.line, /^451 4\.3\.0 /);
    }
  });

  test('the request is the proto LookupRequest as JSON', () => {
    assert.deepEqual(JSON.parse(new TextDecoder().decode(encodeLookupRequest('a@example.org'))), {
      v: 1,
      address: 'a@example.org',
    });
  });
});
