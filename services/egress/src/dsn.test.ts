/**
 * The report builder on its own: RFC 3464 status from a reply, the
 * Diagnostic-Code quoted safely (a hostile reply cannot add a field or a
 * MIME boundary), RET and the size cap.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildDsn, type DsnInput, diagnosticCode, statusOf } from './dsn.ts';
import { reportedAction } from './notify-sender.ts';

const original = Buffer.from('Subject: hello\r\nFrom: <a@sender.test>\r\n\r\nthe body\r\n');

function input(over: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'mx.example.org',
    from: 'MAILER-DAEMON@example.org',
    to: 'a@sender.test',
    queueId: '01M8NA1D2WMZTAPZQ9SDZ9KTZM',
    dsnQueueId: '01M8NA1D2WABCDEFGHJKMNPQRS',
    arrivalDate: new Date('2026-11-30T01:00:00Z'),
    recipients: [
      {
        finalRecipient: 'b@dest.test',
        action: 'failed',
        reply: '550 5.1.1 no such user',
        remoteMta: 'mx.dest.test:25',
        lastAttempt: new Date('2026-11-30T01:00:05Z'),
      },
    ],
    original,
    returnContentMaxBytes: 1024,
    now: new Date('2026-11-30T01:00:06Z'),
    ...over,
  };
}

test('Status: the enhanced code when its class matches, else class.0.0', () => {
  assert.equal(statusOf('550 5.7.26 refused', 'failed'), '5.7.26');
  assert.equal(statusOf('550 4.1.1 odd', 'failed'), '5.0.0');
  assert.equal(statusOf('554 go away', 'failed'), '5.0.0');
  assert.equal(statusOf('', 'relayed'), '2.0.0');
});

test('Diagnostic-Code keeps a hostile reply on one printable line', () => {
  const d = diagnosticCode('550 5.1.1 no\r\nX-Evil: 1\0\n--boundary--');
  assert.equal(d, 'smtp; 550 5.1.1 no X-Evil: 1 --boundary--');
  const dsn = buildDsn(
    input({
      recipients: [
        { ...input().recipients[0]!, reply: '550 no\r\nX-Evil: 1', finalRecipient: 'b@x\r\nBcc: c' },
      ],
    }),
  ).toString();
  assert.ok(!/^X-Evil:/m.test(dsn));
  assert.ok(!/^Bcc:/m.test(dsn));
});

test('RET=FULL returns the message; RET=HDRS and an oversized message only the headers', () => {
  const full = buildDsn(input()).toString();
  assert.match(full, /Content-Type: message\/rfc822\r\n\r\nSubject: hello[\s\S]*the body\r\n\r\n--/);
  const hdrs = buildDsn(input({ ret: 'HDRS' })).toString();
  assert.match(hdrs, /Content-Type: text\/rfc822-headers\r\n\r\nSubject: hello/);
  assert.ok(!hdrs.includes('the body'));
  const big = buildDsn(input({ returnContentMaxBytes: 10 })).toString();
  assert.ok(big.includes('text/rfc822-headers') && !big.includes('the body'));
});

test('NOTIFY decides which outcomes are reported (RFC 3461 §4.1)', () => {
  const opts = { lmtp: false, delayWarnings: true };
  assert.equal(reportedAction(undefined, 'failed', opts), 'failed');
  assert.equal(reportedAction({ notify: ['NEVER'] }, 'failed', opts), undefined);
  assert.equal(reportedAction({ notify: ['SUCCESS'] }, 'failed', opts), undefined);
  assert.equal(reportedAction(undefined, 'delivered', opts), undefined);
  assert.equal(reportedAction({ notify: ['SUCCESS'] }, 'delivered', opts), 'relayed');
  assert.equal(reportedAction({ notify: ['SUCCESS'] }, 'delivered', { ...opts, lmtp: true }), 'delivered');
  assert.equal(reportedAction(undefined, 'deferred', opts), 'delayed');
  assert.equal(reportedAction({ notify: ['FAILURE'] }, 'deferred', opts), undefined);
  assert.equal(reportedAction(undefined, 'deferred', { ...opts, delayWarnings: false }), undefined);
});
