import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { readMessage } from './message-reader.ts';

const stream = (...chunks: string[]) => Readable.from(chunks.map((c) => Buffer.from(c, 'latin1')));

describe('readMessage', () => {
  test('returns the body byte for byte, CRLF split across chunks included', async () => {
    const r = await readMessage(stream('Subject: a\r', '\n\r\nbody\r\n'), 1000);
    assert.equal(r.kind, 'ok');
    if (r.kind === 'ok') assert.equal(r.body.toString('latin1'), 'Subject: a\r\n\r\nbody\r\n');
  });

  test('over the limit: too-big, with the byte count, nothing kept', async () => {
    const r = await readMessage(stream('x'.repeat(600), 'y'.repeat(600)), 1000);
    assert.deepEqual(r, { kind: 'too-big', bytes: 1200 });
  });

  test('the flag smtp-server sets counts as too big too', async () => {
    const s = Object.assign(stream('small\r\n'), { sizeExceeded: true });
    assert.equal((await readMessage(s, 1000)).kind, 'too-big');
  });

  test('a bare LF or bare CR anywhere refuses the message (SMTP smuggling)', async () => {
    const lf = await readMessage(stream('Subject: a\r\n\r\nline\n.\nMAIL FROM:<x@y>\r\n'), 1000);
    assert.equal(lf.kind, 'bare-newline');
    if (lf.kind === 'bare-newline') assert.equal(lf.found.kind, 'LF');
    const cr = await readMessage(stream('Subject: a\r\n\r\nline\r.\r\n'), 1000);
    assert.equal(cr.kind, 'bare-newline');
    if (cr.kind === 'bare-newline') assert.equal(cr.found.kind, 'CR');
  });

  test('an empty message is a message', async () => {
    const r = await readMessage(stream(), 1000);
    assert.equal(r.kind, 'ok');
    if (r.kind === 'ok') assert.equal(r.body.length, 0);
  });
});

describe('readMessage: content the MX refuses', () => {
  test('a NUL anywhere, the \\r\\n\\0.\\r\\n smuggling form included', async () => {
    const r = await readMessage(stream('Subject: a\r\n\r\nx\r\n\0.\r\nMAIL FROM:<a@b>\r\n'), 10000);
    assert.equal(r.kind, 'bad-content');
    if (r.kind === 'bad-content') assert.equal(r.found, 'nul');
  });

  test('998 octets per line pass; 999 are refused, also when split across chunks', async () => {
    const ok = await readMessage(stream('a\r\n\r\n', 'x'.repeat(500), 'x'.repeat(498), '\r\n'), 10000);
    assert.equal(ok.kind, 'ok');
    const long = await readMessage(stream('a\r\n\r\n', 'x'.repeat(500), 'x'.repeat(499), '\r\n'), 10000);
    assert.equal(long.kind, 'bad-content');
    if (long.kind === 'bad-content') assert.equal(long.found, 'long-line');
  });

  test('a 1,000,000-octet line is refused without keeping it', async () => {
    const r = await readMessage(stream('a\r\n\r\n', 'y'.repeat(1_000_000), '\r\n'), 2_000_000);
    assert.equal(r.kind, 'bad-content');
  });
});
