import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  formatReply,
  queuedReply,
  replies,
  SmtpError,
  safeReplyText,
  smtpError,
  splitEnhancedCode,
} from './smtp-reply.ts';

describe('reply table', () => {
  test('every entry is a well-formed refusal whose enhanced class matches its code (RFC 3463 §2)', () => {
    for (const [name, r] of Object.entries(replies)) {
      const err = new SmtpError(r);
      assert.equal(err.line, `${r.code} ${r.enhanced} ${r.text}`, name);
      assert.equal(err.transient, r.code < 500, name);
    }
  });

  test('the codes Sluice promises', () => {
    assert.equal(formatReply(replies.relayDenied), '554 5.7.1 Relay access denied');
    assert.equal(replies.unknownUser.code, 550);
    assert.equal(replies.unknownUser.enhanced, '5.1.1');
    assert.equal(formatReply(replies.tempLookup).slice(0, 9), '451 4.3.0');
    assert.equal(formatReply(replies.tooBig).slice(0, 9), '552 5.3.4');
    assert.equal(formatReply(replies.queueFull).slice(0, 9), '452 4.3.1');
    assert.equal(formatReply(replies.queueUnavailable).slice(0, 9), '451 4.3.0');
    assert.equal(formatReply(replies.tooManyRecipients).slice(0, 9), '452 4.5.3');
    assert.equal(formatReply(replies.bareLf), '550 5.5.2 Error: bare <LF> received');
    assert.equal(
      formatReply(queuedReply('01JABCDEFGHJKMNPQRSTVW')),
      '250 2.0.0 Ok: queued as 01JABCDEFGHJKMNPQRSTVW',
    );
  });
});

describe('SmtpError', () => {
  test('has the shape smtp-server callbacks read: responseCode and a message led by the enhanced code', () => {
    const err = smtpError('relayDenied');
    assert.ok(err instanceof Error);
    assert.equal(err.responseCode, 554);
    assert.equal(err.message, '5.7.1 Relay access denied');
    assert.deepEqual(splitEnhancedCode(err.message), { enhanced: '5.7.1', text: 'Relay access denied' });
  });

  test('a more specific text keeps the code', () => {
    const err = smtpError('policyReject', 'Message rejected: spam');
    assert.equal(err.line, '550 5.7.1 Message rejected: spam');
  });

  test('refuses malformed replies', () => {
    assert.throws(() => new SmtpError({ code: 250, enhanced: '2.0.0', text: 'ok' }), RangeError);
    assert.throws(() => new SmtpError({ code: 550, enhanced: '4.1.1', text: 'x' }), /does not match/);
    assert.throws(() => new SmtpError({ code: 550, enhanced: '5.1', text: 'x' }), /RFC 3463/);
    assert.throws(() => new SmtpError({ code: 550, enhanced: '5.1.1', text: 'a\r\n250 ok' }), /CR, LF/);
  });
});

describe('safeReplyText', () => {
  test('keeps printable ASCII only, bounded', () => {
    assert.equal(safeReplyText('spam\r\n250 OK\u00e9'), 'spam 250 OK');
    assert.equal(safeReplyText('x'.repeat(300)).length, 200);
  });
  test('splitEnhancedCode leaves plain text alone', () => {
    assert.equal(splitEnhancedCode('Error: need RCPT command'), undefined);
  });
});
