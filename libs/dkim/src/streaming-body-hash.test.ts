/**
 * The streamed body hash equals the one-shot one (canonical.ts bodyHash)
 * whatever the chunking: bodies with trailing whitespace, tabs, WSP runs,
 * empty lines inside and at the end, a missing final CRLF, bare CR and LF,
 * split at every position and in random chunks (a CRLF cut between two
 * chunks, whitespace at a chunk's end, an empty-line run spanning chunks).
 * The message splitter agrees with splitMessage, and a signature made from
 * the streamed hash verifies with dkimpy (an independent implementation).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { DKIMPY_PYTHON, dkimpyVerify } from '@sluice/test-harness';
import { bodyHash } from './canonical.ts';
import { buildKeyring, dkimTxtRecord } from './keys.ts';
import { splitMessage } from './message-headers.ts';
import { dkimSignature } from './sign.ts';
import { RelaxedBodyHash, streamedBodyHash, streamedMessageParts } from './streaming-body-hash.ts';

const bodies = [
  '',
  '\r\n',
  '\r\n\r\n\r\n',
  'one line',
  'one line\r\n',
  'a  b\t\tc  \r\n \t \r\nd\r\n\r\n\r\n',
  'trailing ws   \r\n\t\r\n  \r\n',
  '\r\n\r\nleading empty lines\r\n',
  'x \r\n\r\n \r\ny\t\r\n\r\n',
  'bare\rCR and bare\nLF \r\nend',
  'last line without CRLF, then spaces   ',
  'é unicode ü \r\n\r\n',
];

function chunksAt(buf: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts, buf.length]) {
    out.push(buf.subarray(from, c));
    from = c;
  }
  return out;
}

function streamed(chunks: Buffer[]): string {
  const h = new RelaxedBodyHash();
  for (const c of chunks) h.update(c);
  return h.digest();
}

/** A deterministic pseudo-random generator, so a failure repeats. */
function rng(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
}

describe('streamed relaxed body hash', () => {
  test('equals the one-shot hash for every single split point and every pair of split points', () => {
    for (const text of bodies) {
      const buf = Buffer.from(text, 'utf8');
      const want = bodyHash(buf);
      for (let i = 0; i <= buf.length; i++) {
        assert.equal(streamed(chunksAt(buf, [i])), want, `${JSON.stringify(text)} cut at ${i}`);
        for (let j = i; j <= buf.length; j++)
          assert.equal(streamed(chunksAt(buf, [i, j])), want, `${JSON.stringify(text)} cut at ${i},${j}`);
      }
      // One byte at a time: every boundary at once.
      assert.equal(
        streamed([...buf].map((b) => Buffer.from([b]))),
        want,
        `${JSON.stringify(text)} byte by byte`,
      );
    }
  });

  test('equals the one-shot hash for large random bodies in random chunks', async () => {
    const rand = rng(7);
    const pieces = [
      'word',
      ' ',
      '  ',
      '\t',
      '\r\n',
      '\r\n\r\n',
      ' \r\n',
      '\t\r\n',
      'x'.repeat(300),
      '\r',
      '\n',
    ];
    for (let round = 0; round < 20; round++) {
      let text = '';
      while (text.length < 200_000) text += pieces[Math.floor(rand() * pieces.length)];
      if (round % 2 === 0) text += '\r\n \r\n\t\r\n\r\n';
      const buf = Buffer.from(text, 'latin1');
      const cuts: number[] = [];
      for (let at = 0; at < buf.length; ) {
        at += 1 + Math.floor(rand() * 70_000);
        if (at < buf.length) cuts.push(at);
      }
      const chunks = chunksAt(buf, cuts);
      assert.equal(await streamedBodyHash(Readable.from(chunks)), bodyHash(buf), `round ${round}`);
    }
  });

  test('refuses an update after the digest', () => {
    const h = new RelaxedBodyHash();
    h.digest();
    assert.throws(() => h.update(Buffer.from('x')), /after digest/);
  });
});

describe('streamed message parts', () => {
  const messages = [
    'From: a@example.org\r\nSubject: s\r\n\r\nbody  \r\n\r\n',
    '\r\nno headers\r\n',
    'From: a@example.org\r\nSubject: no body',
    'From: a@example.org\r\n\r\n',
    'From: a@example.org\r\nX: y\r\n\r\n\r\nblank first body line \r\n',
  ];

  test('cut the header block and hash the body as splitMessage and bodyHash do, at every split point', async () => {
    for (const text of messages) {
      const buf = Buffer.from(text, 'latin1');
      const want = splitMessage(buf);
      const wantHead = buf.subarray(0, Math.max(0, buf.length - want.body.length)).toString('latin1');
      for (let i = 0; i <= buf.length; i++) {
        for (const j of [i, Math.min(buf.length, i + 1), Math.min(buf.length, i + 2)]) {
          const got = await streamedMessageParts(Readable.from(chunksAt(buf, [i, j])));
          assert.equal(got.bodyHash, bodyHash(want.body), `${JSON.stringify(text)} cut at ${i},${j}`);
          // The head is what splitMessage parsed: the header fields without the blank line.
          assert.deepEqual(
            splitMessage(Buffer.concat([got.head, Buffer.from('\r\n\r\n')])).headers.map((h) => h.raw),
            want.headers.map((h) => h.raw),
            `${JSON.stringify(text)} cut at ${i},${j}`,
          );
          assert.ok(wantHead.startsWith(got.head.toString('latin1')));
        }
      }
    }
  });
});

const haveDkimpy = existsSync(DKIMPY_PYTHON) && existsSync('/usr/lib/python3/dist-packages/dkim');

describe('a signature over a streamed body hash', { skip: !haveDkimpy && 'dkimpy not installed' }, () => {
  test('verifies with dkimpy (RSA-2048 and Ed25519), the body cut at awkward places', async () => {
    const pem = (t: 'rsa' | 'ed25519') =>
      (t === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519')
      ).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const ring = buildKeyring([
      { domain: 'example.org', selector: 'r1', privateKey: pem('rsa'), active: true },
      { domain: 'example.org', selector: 'e1', privateKey: pem('ed25519'), active: true },
    ]);
    const body = `${'line with trailing space \r\n\t indented\t\r\n'.repeat(5000)}\r\n \r\n\r\n`;
    const message = Buffer.from(
      `From: a@example.org\r\nTo: b@x.test\r\nSubject: streamed\r\nDate: Mon, 30 Nov 2026 04:00:00 +0000\r\n\r\n${body}`,
      'latin1',
    );
    // Cut inside a CRLF, inside a whitespace run, and inside the trailing empty lines.
    const crlf = message.indexOf('\r\n', 5000) + 1;
    const ws = message.indexOf('space ', 70_000) + 5;
    const tail = message.length - 4;
    const parts = await streamedMessageParts(Readable.from(chunksAt(message, [crlf, ws, tail])));
    const { headers } = splitMessage(Buffer.concat([parts.head, Buffer.from('\r\n\r\n')]));
    const sigs = ring.keys.map(
      (k) => `DKIM-Signature: ${dkimSignature(headers, { bodyHash: parts.bodyHash }, k)}\r\n`,
    );
    const signed = Buffer.concat([Buffer.from(sigs.join(''), 'latin1'), message]);
    const verdict = await dkimpyVerify(signed, {
      'r1._domainkey.example.org': dkimTxtRecord(ring.keys[0]!),
      'e1._domainkey.example.org': dkimTxtRecord(ring.keys[1]!),
    });
    assert.deepEqual(
      verdict.dkim.map((d) => d.ok),
      [true, true],
      JSON.stringify(verdict),
    );
  });
});
