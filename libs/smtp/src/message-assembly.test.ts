import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findBareNewline } from './bare-newline.ts';
import { assembleMessage, HeaderAssemblyError } from './message-assembly.ts';

const body = Buffer.from('From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n');

describe('assembleMessage', () => {
  test('prepends headers top first, then the body byte for byte', () => {
    const out = assembleMessage(
      [
        { name: 'Received', value: 'from a\r\n\tby b; Tue, 5 May 2026 10:00:00 +0000' },
        { name: 'Authentication-Results', value: 'mx.example.net; spf=pass' },
      ],
      body,
    );
    assert.equal(
      out.toString('utf8'),
      'Received: from a\r\n\tby b; Tue, 5 May 2026 10:00:00 +0000\r\n' +
        'Authentication-Results: mx.example.net; spf=pass\r\n' +
        body.toString('utf8'),
    );
    assert.ok(out.subarray(out.length - body.length).equals(body));
    assert.equal(findBareNewline(out), undefined);
  });

  test('no headers: the body unchanged', () => {
    assert.ok(assembleMessage([], body).equals(body));
  });

  test('refuses values that would inject a header or end the header block', () => {
    for (const value of ['x\r\nX-Evil: 1', 'x\nX-Evil: 1', 'x\rX-Evil: 1', 'x\r\n\r\nbody', 'x\0']) {
      assert.throws(() => assembleMessage([{ name: 'X-Test', value }], body), HeaderAssemblyError, value);
    }
    assert.throws(() => assembleMessage([{ name: 'Bad Name', value: 'x' }], body), HeaderAssemblyError);
  });
});

describe('removeHeaders (envelope instruction, RFC 8601 §5)', () => {
  const raw = Buffer.from(
    'Authentication-Results: mx.example.org;\r\n\tdkim=pass (forged)\r\n' +
      'From: a@example.org\r\n' +
      'authentication-results: other.example; spf=pass\r\n' +
      'Subject: hi\r\n\r\n' +
      'Authentication-Results: in the body stays\r\n',
  );

  test('drops the named occurrence with its folded lines; the rest byte for byte', () => {
    const out = assembleMessage([{ name: 'Received', value: 'x' }], raw, [
      { name: 'Authentication-Results', index: 0 },
    ]);
    assert.equal(
      out.toString('utf8'),
      'Received: x\r\nFrom: a@example.org\r\nauthentication-results: other.example; spf=pass\r\nSubject: hi\r\n\r\n' +
        'Authentication-Results: in the body stays\r\n',
    );
  });

  test('the index counts per name, case-insensitively; an index past the end removes nothing', () => {
    const out = assembleMessage([], raw, [
      { name: 'AUTHENTICATION-RESULTS', index: 1 },
      { name: 'Subject', index: 3 },
    ]);
    assert.doesNotMatch(out.toString('utf8'), /other\.example/);
    assert.match(
      out.toString('utf8'),
      /forged[\s\S]*Subject: hi\r\n\r\nAuthentication-Results: in the body stays/,
    );
  });

  test('a message with no body separator and one without headers', () => {
    const noBody = Buffer.from('X-A: 1\r\nX-B: 2\r\n');
    assert.equal(assembleMessage([], noBody, [{ name: 'X-A', index: 0 }]).toString(), 'X-B: 2\r\n');
    const noHeaders = Buffer.from('\r\nX-A: 1\r\n');
    assert.ok(assembleMessage([], noHeaders, [{ name: 'X-A', index: 0 }]).equals(noHeaders));
  });
});
