import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_PATH_OCTETS, type Mailbox, parseMailbox, parseReversePath } from './address.ts';

function ok(input: string, opts?: Parameters<typeof parseMailbox>[1]): Mailbox {
  const r = parseMailbox(input, opts);
  assert.ok(r.ok, `expected ${JSON.stringify(input)} to parse, got ${r.ok ? '' : r.reason}`);
  return r.mailbox;
}

function refused(input: string, problem: string, opts?: Parameters<typeof parseMailbox>[1]): void {
  const r = parseMailbox(input, opts);
  assert.equal(r.ok, false, `expected ${JSON.stringify(input)} to be refused`);
  if (!r.ok) assert.equal(r.problem, problem, `${JSON.stringify(input)}: ${r.reason}`);
}

describe('parseMailbox', () => {
  test('splits local@domain and lowercases only the domain (RFC 5321 §2.4)', () => {
    const m = ok('John.Doe@Example.ORG');
    assert.equal(m.localPart, 'John.Doe');
    assert.equal(m.domain, 'example.org');
    assert.equal(m.address, 'John.Doe@example.org');
    assert.equal(m.domainKind, 'domain');
    assert.equal(m.routingCharacters, false);
  });

  test('quoted local parts: unquoted when they are a dot-string, kept quoted otherwise', () => {
    assert.equal(ok('"john.doe"@example.org').address, 'john.doe@example.org');
    const spaced = ok('"john doe"@example.org');
    assert.equal(spaced.localPart, 'john doe');
    assert.equal(spaced.address, '"john doe"@example.org');
    const withAt = ok('"evil@other.example"@example.org');
    assert.equal(withAt.domain, 'example.org', 'the @ inside quotes is not the separator');
    assert.equal(withAt.localPart, 'evil@other.example');
    assert.equal(ok('"a\\"b"@example.org').localPart, 'a"b');
  });

  test('% and ! are reported, never interpreted as routing', () => {
    const pct = ok('user%evil.example@example.org');
    assert.equal(pct.domain, 'example.org');
    assert.equal(pct.routingCharacters, true);
    assert.equal(ok('evil.example!user@example.org').routingCharacters, true);
  });

  test('source routes are refused', () => {
    refused('@relay.example:user@example.org', 'source-route');
    refused('@a.example,@b.example:user@example.org', 'source-route');
  });

  test('IDN domains become A-labels', () => {
    assert.equal(ok('user@Bücher.Example').domain, 'xn--bcher-kva.example');
    assert.equal(ok('user@xn--bcher-kva.example').domain, 'xn--bcher-kva.example');
  });

  test('address literals are recognised (RFC 5321 §4.1.3)', () => {
    const v4 = ok('user@[192.0.2.1]');
    assert.equal(v4.domainKind, 'ipv4');
    assert.equal(v4.domain, '[192.0.2.1]');
    const v6 = ok('user@[IPv6:2001:DB8::1]');
    assert.equal(v6.domainKind, 'ipv6');
    assert.equal(v6.domain, '[IPv6:2001:db8::1]');
    refused('user@[999.0.0.1]', 'address-literal');
    refused('user@[tag:content]', 'address-literal');
    refused('user@[192.0.2.1', 'address-literal');
  });

  test('bad syntax is refused with a specific problem', () => {
    refused('', 'empty');
    refused('no-at-sign', 'syntax');
    refused('user@', 'syntax');
    refused('@example.org', 'source-route');
    refused('.user@example.org', 'local-part');
    refused('user.@example.org', 'local-part');
    refused('us..er@example.org', 'local-part');
    refused('us(er@example.org', 'local-part');
    refused('"unterminated@example.org', 'syntax');
    refused('user@exa_mple.org', 'domain');
    refused('user@-example.org', 'domain');
    refused('user@example.org.', 'domain');
    refused('user@example..org', 'domain');
    refused('user\r\n@example.org', 'syntax');
    refused('a@b@example.org', 'local-part');
  });

  test('UTF-8 local parts only with SMTPUTF8 (RFC 6531)', () => {
    refused('jöran@example.org', 'utf8-not-allowed');
    assert.equal(ok('jöran@example.org', { smtputf8: true }).localPart, 'jöran');
  });

  test('length limits (RFC 5321 §4.5.3.1)', () => {
    const domain = 'example.org';
    const maxLocal = MAX_PATH_OCTETS - 2 - 1 - domain.length;
    ok(`${'a'.repeat(maxLocal)}@${domain}`);
    refused(`${'a'.repeat(maxLocal + 1)}@${domain}`, 'too-long');
    // 64-octet local part limit only when asked: SRS addresses exceed it in practice.
    ok(`${'a'.repeat(65)}@${domain}`);
    refused(`${'a'.repeat(65)}@${domain}`, 'too-long', { strictLocalPartLength: true });
    refused(`user@${'a'.repeat(64)}.org`, 'domain');
  });
});

describe('parseReversePath', () => {
  test('the null reverse-path is valid for MAIL FROM (RFC 5321 §4.5.5)', () => {
    assert.deepEqual(parseReversePath(''), { ok: true, nullSender: true });
  });
  test('otherwise a mailbox', () => {
    const r = parseReversePath('Bounce@Example.org');
    assert.ok(r.ok && !r.nullSender);
    if (r.ok && !r.nullSender) assert.equal(r.mailbox.address, 'Bounce@example.org');
    assert.equal(parseReversePath('bad address').ok, false);
  });
});
