import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeaderFieldError, headerField, headerFieldProblem } from './header-field.ts';
import { assembleMessage, HeaderAssemblyError } from './message-assembly.ts';
import { receivedHeader } from './received-header.ts';

describe('headerField', () => {
  test('a plain and a properly folded value are built as given', () => {
    assert.deepEqual(headerField('X-Test', 'v', 'test'), { name: 'X-Test', value: 'v', addedBy: 'test' });
    const folded = 'mx.example.org;\r\n\tspf=pass smtp.mailfrom=a@example.net;\r\n dkim=none';
    assert.equal(headerField('Authentication-Results', folded, 'filter').value, folded);
    assert.equal(headerFieldProblem('X-Test', folded), undefined);
  });

  test('CR, LF or NUL outside a fold is refused where the header is built, naming the header', () => {
    for (const value of [
      'a\r\nInjected: yes', // CRLF not followed by WSP starts a new field
      'a\nb', // bare LF
      'a\rb', // bare CR
      'a\r\n\r\nbody', // ends the header block
      'a\0b', // NUL
      'a\r\n', // a trailing CRLF without the fold's WSP
      '\n\tx', // LF + tab is not CRLF + WSP
    ]) {
      assert.throws(
        () => headerField('X-Test', value, 'test'),
        (err: unknown) =>
          err instanceof HeaderFieldError &&
          /^header X-Test has (a NUL|a CR or LF that is not a fold)/.test(err.message),
        JSON.stringify(value),
      );
    }
  });

  test('a field name must be printable ASCII without a colon (RFC 5322 §2.2)', () => {
    for (const name of ['Bad Name', 'X:Y', '', 'X-\u00e9', 'X\r\nY']) {
      assert.throws(() => headerField(name, 'v', 'test'), /invalid header name/, JSON.stringify(name));
    }
  });

  test('the Received builder uses it: a host name with CRLF fails at build time', () => {
    assert.throws(
      () =>
        receivedHeader({
          helo: 'client.test',
          ehlo: true,
          clientIp: '192.0.2.1',
          receivedBy: 'mx.example.org\r\nX-Injected: 1',
          queueId: '01JABCDEFGHJKMNPQRSTVW',
          recipients: ['a@example.org'],
          date: new Date(0),
        }),
      HeaderFieldError,
    );
  });

  test('the assembly at the egress applies the same rule as its last line of defence', () => {
    assert.throws(
      () => assembleMessage([{ name: 'X-Test', value: 'a\nb' }], Buffer.from('\r\n')),
      (err: unknown) =>
        err instanceof HeaderAssemblyError && /header X-Test has a CR or LF/.test(err.message),
    );
  });
});
