import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BareNewlineScanner, findBareNewline } from './bare-newline.ts';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('bare line ends (RFC 5321 §2.3.8, SMTP smuggling)', () => {
  test('CRLF-only data is clean', () => {
    assert.equal(findBareNewline(b('a\r\nb\r\n\r\nc\r\n')), undefined);
    assert.equal(findBareNewline(b('')), undefined);
  });

  test('the smuggling end-of-data variants are all caught', () => {
    const variants = ['\n.\n', '\r.\r', '\r.\n', '\n.\r', '\n.\r\n', '\r\n.\n', '\r.\r\n', '\r\n.\r'];
    for (const v of variants) {
      const found = findBareNewline(b(`line\r\n${v}MAIL FROM:<x@y>\r\n`));
      assert.ok(found, JSON.stringify(v));
    }
  });

  test('reports the kind and offset of the first one', () => {
    assert.deepEqual(findBareNewline(b('ab\ncd')), { kind: 'LF', offset: 2 });
    assert.deepEqual(findBareNewline(b('ab\rcd')), { kind: 'CR', offset: 2 });
    assert.deepEqual(findBareNewline(b('ab\r')), { kind: 'CR', offset: 2 });
    assert.deepEqual(findBareNewline(b('\r\r\n')), { kind: 'CR', offset: 0 });
  });

  test('a CRLF split across chunks is not bare', () => {
    const s = new BareNewlineScanner();
    assert.equal(s.push(b('line one\r')), undefined);
    assert.equal(s.push(b('\nline two\r')), undefined);
    assert.equal(s.push(b('\n')), undefined);
    assert.equal(s.end(), undefined);
  });

  test('a CR at a chunk end followed by something else is bare', () => {
    const s = new BareNewlineScanner();
    assert.equal(s.push(b('abc\r')), undefined);
    assert.deepEqual(s.push(b('x')), { kind: 'CR', offset: 3 });
    assert.deepEqual(s.push(b('\r\n')), { kind: 'CR', offset: 3 }, 'stays found');
  });
});
