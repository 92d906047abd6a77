import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addressLiteral,
  isValidHeloName,
  type ReceivedOptions,
  receivedHeader,
  receivedProtocol,
  rfc5322Date,
} from './received-header.ts';

const base: ReceivedOptions = {
  helo: 'mail.example.org',
  ehlo: true,
  clientIp: '192.0.2.1',
  receivedBy: 'mx.example.net',
  queueId: '01JABCDEFGHJKMNPQRSTVW',
  recipients: ['user@example.net'],
  date: new Date(Date.UTC(2026, 4, 5, 10, 0, 7)),
};

describe('receivedHeader', () => {
  test('Postfix layout with for <rcpt> for a single recipient (RFC 5321 §4.4)', () => {
    const h = receivedHeader(base);
    assert.equal(h.name, 'Received');
    assert.equal(h.addedBy, 'ingress');
    assert.equal(
      h.value,
      'from mail.example.org ([192.0.2.1])\r\n\tby mx.example.net (Sluice) with ESMTP id 01JABCDEFGHJKMNPQRSTVW\r\n' +
        '\tfor <user@example.net>; Tue, 5 May 2026 10:00:07 +0000',
    );
  });

  test('no "for" with several recipients (would disclose Bcc)', () => {
    const h = receivedHeader({ ...base, recipients: ['a@example.net', 'b@example.net'] });
    assert.doesNotMatch(h.value, /for </);
    assert.match(h.value, /id 01JABCDEFGHJKMNPQRSTVW; Tue, 5 May 2026 10:00:07 \+0000$/);
  });

  test('TLS version and cipher in a comment, ESMTPS (RFC 3848)', () => {
    const h = receivedHeader({
      ...base,
      reverseName: 'mail.example.org',
      tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    });
    assert.match(h.value, /^from mail\.example\.org \(mail\.example\.org \[192\.0\.2\.1\]\)\r\n/);
    assert.match(h.value, /\r\n\t\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384\)\r\n/);
    assert.match(h.value, / with ESMTPS id /);
  });

  test('a HELO that is not a domain never brings CR/LF or comment delimiters into the header', () => {
    const h = receivedHeader({ ...base, helo: 'evil)\r\nX-Injected: yes (' });
    assert.doesNotMatch(h.value, /X-Injected: yes\r\n|\r\nX-Injected/);
    assert.match(
      h.value,
      /^from \[192\.0\.2\.1\] \(\[192\.0\.2\.1\]\)\r\n\t\(HELO evil\?\?\?X-Injected:\?yes\?\?\)/,
    );
    // every line break is folding
    assert.doesNotMatch(h.value, /\r\n(?![\t ])/);
  });

  test('IPv6 and IPv4-mapped clients get RFC 5321 §4.1.3 literals', () => {
    assert.equal(addressLiteral('2001:DB8::1'), '[IPv6:2001:db8::1]');
    assert.equal(addressLiteral('::ffff:127.0.0.1'), '[127.0.0.1]');
    assert.throws(() => addressLiteral('not-an-ip'));
    assert.match(receivedHeader({ ...base, clientIp: '2001:db8::1' }).value, /\(\[IPv6:2001:db8::1\]\)/);
  });

  test('HELO validity', () => {
    assert.ok(isValidHeloName('mail.example.org'));
    assert.ok(isValidHeloName('[192.0.2.1]'));
    assert.ok(isValidHeloName('[IPv6:2001:db8::1]'));
    assert.ok(!isValidHeloName('192.0.2.1 extra'));
    assert.ok(!isValidHeloName(''));
  });

  test('with-protocol keywords (RFC 3848, RFC 6531 §3.7.3)', () => {
    assert.equal(receivedProtocol({ ehlo: false }), 'SMTP');
    assert.equal(receivedProtocol({ ehlo: true }), 'ESMTP');
    assert.equal(receivedProtocol({ ehlo: true, tls: true }), 'ESMTPS');
    assert.equal(receivedProtocol({ ehlo: true, authenticated: true }), 'ESMTPA');
    assert.equal(receivedProtocol({ ehlo: true, tls: true, authenticated: true }), 'ESMTPSA');
    assert.equal(receivedProtocol({ ehlo: true, tls: true, smtputf8: true }), 'UTF8SMTPS');
    assert.equal(receivedProtocol({ ehlo: true, lmtp: true }), 'LMTP');
  });

  test('privacy (submission): hideClient leaves out HELO and address, hideTlsDetails the cipher, not the S', () => {
    const v = receivedHeader({
      ...base,
      authenticated: true,
      hideClient: true,
      hideTlsDetails: true,
      tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    }).value;
    assert.doesNotMatch(v, /from|192\.0\.2|TLSv1\.3|TLS_AES/);
    assert.match(v, /^by mx\.example\.net \(Sluice\) with ESMTPSA id /);
  });

  test('RFC 5322 date', () => {
    assert.equal(rfc5322Date(new Date(Date.UTC(2026, 0, 31, 23, 5, 9))), 'Sat, 31 Jan 2026 23:05:09 +0000');
  });
});
