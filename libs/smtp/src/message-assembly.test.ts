import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { findBareNewline } from './bare-newline.ts';
import {
  assembleMessage,
  formatPrependHeaders,
  HeaderAssemblyError,
  messageStream,
} from './message-assembly.ts';

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

describe('a body without a header section (issue 10)', () => {
  const received = [{ name: 'Received', value: 'from a by b' }];
  test('gets an empty line after our headers, never glued to its first line', () => {
    const out = assembleMessage(received, Buffer.from('just text, no headers\r\n')).toString();
    assert.equal(out, 'Received: from a by b\r\n\r\njust text, no headers\r\n');
  });
  test('a broken first line (no colon) counts as no header section', () => {
    const out = assembleMessage(received, Buffer.from('Subject without colon\r\n\r\nx\r\n')).toString();
    assert.equal(out, 'Received: from a by b\r\n\r\nSubject without colon\r\n\r\nx\r\n');
  });
  test('a normal header section and an empty one (leading CRLF) are left alone', () => {
    assert.equal(
      assembleMessage(received, Buffer.from('Subject: x\r\n\r\nb\r\n')).toString(),
      'Received: from a by b\r\nSubject: x\r\n\r\nb\r\n',
    );
    assert.equal(
      assembleMessage(received, Buffer.from('\r\nb\r\n')).toString(),
      'Received: from a by b\r\n\r\nb\r\n',
    );
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

describe('messageStream', () => {
  test('yields the headers, then the body chunks as they are', async () => {
    const body = Readable.from([Buffer.from('Subject: s\r\n\r\n'), Buffer.from('line\r\n')]);
    const out: Buffer[] = [];
    for await (const c of messageStream(formatPrependHeaders([{ name: 'Received', value: 'x' }]), body)) {
      out.push(c as Buffer);
    }
    assert.equal(Buffer.concat(out).toString(), 'Received: x\r\nSubject: s\r\n\r\nline\r\n');
    assert.equal(out.length, 3, 'not concatenated');
  });

  test('a failing body fails the message stream', async () => {
    const body = new Readable({
      read() {
        this.destroy(new Error('sha256 mismatch'));
      },
    });
    await assert.rejects(async () => {
      for await (const _ of messageStream(Buffer.from('H: v\r\n'), body)) {
        /* read on */
      }
    }, /sha256 mismatch/);
  });

  test('leaves out removeHeaders fields even when the header block spans chunks', async () => {
    const body = Readable.from([
      Buffer.from('Authentication-Results: mx.example.org; dkim=pa'),
      Buffer.from('ss\r\nFrom: a@x\r\n'),
      Buffer.from('\r\nbody\r\n'),
    ]);
    const out: Buffer[] = [];
    for await (const c of messageStream(Buffer.from('H: v\r\n'), body, [
      { name: 'Authentication-Results', index: 0 },
    ])) {
      out.push(c as Buffer);
    }
    assert.equal(Buffer.concat(out).toString(), 'H: v\r\nFrom: a@x\r\n\r\nbody\r\n');
  });
});

describe('messageStream: a body without a header section', () => {
  const collect = async (chunks: string[]) => {
    const out: Buffer[] = [];
    const head = formatPrependHeaders([{ name: 'Received', value: 'x' }]);
    for await (const c of messageStream(head, Readable.from(chunks.map((c) => Buffer.from(c)))))
      out.push(Buffer.from(c));
    return Buffer.concat(out).toString();
  };
  test('the empty line is added, decided on the first line even when it spans chunks', async () => {
    assert.equal(await collect(['just ', 'text\r\nmore\r\n']), 'Received: x\r\n\r\njust text\r\nmore\r\n');
    assert.equal(await collect(['Subj', 'ect: a\r\n\r\nb\r\n']), 'Received: x\r\nSubject: a\r\n\r\nb\r\n');
    assert.equal(await collect(['no newline at all']), 'Received: x\r\n\r\nno newline at all');
  });
});
