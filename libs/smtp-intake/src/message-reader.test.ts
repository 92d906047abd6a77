import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import type { StoredBody } from '@sluice/bus';
import { BodyBudget } from './body-budget.ts';
import { type ReadOptions, readMessage } from './message-reader.ts';

const stream = (...chunks: (string | Buffer)[]) =>
  Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'latin1') : c)));

/** Collects what the reader streams, as the object store would take it, noting the budget on the way. */
function collector(budget: BodyBudget) {
  const seen = { chunks: 0, bytes: 0, maxUsed: 0, hash: createHash('sha256') };
  const storeStream = async (chunks: AsyncIterable<Uint8Array>): Promise<StoredBody> => {
    for await (const c of chunks) {
      seen.chunks++;
      seen.bytes += c.length;
      seen.hash.update(c);
      seen.maxUsed = Math.max(seen.maxUsed, budget.used);
    }
    return { ref: { kind: 'object', bucket: 'b', key: 'k', size: seen.bytes, sha256: '0'.repeat(64) } };
  };
  return { seen, storeStream };
}

function options(over: Partial<ReadOptions> & { budget?: BodyBudget } = {}): ReadOptions {
  const budget = over.budget ?? new BodyBudget(1024 * 1024);
  return {
    maxBytes: 1000,
    inlineLimit: 1000,
    reservation: budget.reserve(),
    storeStream: () => Promise.reject(new Error('not expected to stream')),
    ...over,
  };
}

describe('readMessage', () => {
  test('returns the body byte for byte, CRLF split across chunks included', async () => {
    const r = await readMessage(stream('Subject: a\r', '\n\r\nbody\r\n'), options());
    assert.equal(r.kind, 'buffered');
    if (r.kind === 'buffered') assert.equal(r.body.toString('latin1'), 'Subject: a\r\n\r\nbody\r\n');
  });

  test('over the limit: too-big, with the byte count, nothing kept', async () => {
    const r = await readMessage(stream('x'.repeat(600), 'y'.repeat(600)), options());
    assert.deepEqual(r, { kind: 'too-big', bytes: 1200 });
  });

  test('the flag smtp-server sets counts as too big too', async () => {
    const s = Object.assign(stream('small\r\n'), { sizeExceeded: true });
    assert.equal((await readMessage(s, options())).kind, 'too-big');
  });

  test('a bare LF or bare CR anywhere refuses the message (SMTP smuggling)', async () => {
    const lf = await readMessage(stream('Subject: a\r\n\r\nline\n.\nMAIL FROM:<x@y>\r\n'), options());
    assert.equal(lf.kind, 'bare-newline');
    if (lf.kind === 'bare-newline') assert.equal(lf.found.kind, 'LF');
    const cr = await readMessage(stream('Subject: a\r\n\r\nline\r.\r\n'), options());
    assert.equal(cr.kind, 'bare-newline');
    if (cr.kind === 'bare-newline') assert.equal(cr.found.kind, 'CR');
  });

  test('an empty message is a message', async () => {
    const r = await readMessage(stream(), options());
    assert.equal(r.kind, 'buffered');
    if (r.kind === 'buffered') assert.equal(r.body.length, 0);
  });

  test('a body over the inline limit streams chunk by chunk, holding only chunks in transit', async () => {
    const budget = new BodyBudget(64 * 1024);
    const { seen, storeStream } = collector(budget);
    const line = Buffer.from(`${'x'.repeat(510)}\r\n${'x'.repeat(510)}\r\n`); // lines under 998 (RFC 5322)
    const chunks = Array.from({ length: 3000 }, () => line); // 3 MB in 1 KiB chunks
    const reservation = budget.reserve();
    const r = await readMessage(stream(...chunks), {
      ...options({ budget }),
      reservation,
      maxBytes: 10 * 1024 * 1024,
      inlineLimit: 8 * 1024,
      storeStream,
    });
    assert.equal(r.kind, 'stored');
    if (r.kind !== 'stored') return;
    assert.equal(r.bytes, 3000 * 1024);
    assert.equal(seen.bytes, 3000 * 1024);
    assert.equal(seen.chunks, 3000, 'handed on as received, not concatenated');
    const whole = createHash('sha256').update(Buffer.concat(chunks)).digest('hex');
    assert.equal(seen.hash.digest('hex'), whole);
    assert.ok(
      seen.maxUsed <= 8 * 1024 + 2 * 1024,
      `held at most the inline limit and a chunk (${seen.maxUsed})`,
    );
    assert.equal(r.head.toString('latin1', 0, 10), 'xxxxxxxxxx');
    reservation.release();
    assert.equal(budget.used, 0);
  });

  test('a bare LF after the inline limit, or split across chunks, abandons the stream and drains DATA', async () => {
    const body = Buffer.from(`${'a'.repeat(998)}\r\n${'a'.repeat(998)}\r\nend\r`);
    const budget = new BodyBudget(1024 * 1024);
    const { storeStream } = collector(budget);
    // The trailing CR is bare: found only at the end of the stream, after the last chunk.
    const r = await readMessage(stream(body.subarray(0, 1500), body.subarray(1500)), {
      ...options({ budget }),
      maxBytes: 10_000,
      storeStream,
    });
    assert.equal(r.kind, 'bare-newline');
    if (r.kind === 'bare-newline') assert.deepEqual(r.found, { kind: 'CR', offset: body.length - 1 });

    const late = await readMessage(
      stream(`${'a'.repeat(998)}\r\n${'a'.repeat(500)}`, '\r', '\nok\r', '\n', 'x\n', 'y'.repeat(500)),
      {
        ...options({ budget }),
        maxBytes: 10_000,
        storeStream,
      },
    );
    assert.equal(late.kind, 'bare-newline');
    if (late.kind === 'bare-newline') {
      assert.deepEqual(late.found, { kind: 'LF', offset: 1507 });
      assert.equal(late.bytes, 2008, 'the rest of DATA was read and dropped');
    }
  });

  test('too big half way through a streamed body: too-big with the full byte count', async () => {
    const r = await readMessage(stream(...Array.from({ length: 10 }, () => `${'z'.repeat(998)}\r\n`)), {
      ...options(),
      maxBytes: 5000,
      inlineLimit: 2000,
      storeStream: collector(new BodyBudget(1)).storeStream,
    });
    assert.deepEqual(r, { kind: 'too-big', bytes: 10_000 });
  });

  test('over the body budget: over-budget, the rest drained', async () => {
    const budget = new BodyBudget(2500);
    const other = budget.reserve();
    assert.ok(other.grow(2000), 'another transaction holds most of the budget');
    const reservation = budget.reserve();
    const r = await readMessage(stream('a'.repeat(400), 'b'.repeat(400), 'c'.repeat(400)), {
      ...options({ budget }),
      reservation,
    });
    assert.deepEqual(r, { kind: 'over-budget', bytes: 1200 });
    reservation.release();
    other.release();
    assert.equal(budget.used, 0);
  });

  test('a store that fails: store-failed with the error, DATA drained', async () => {
    const broken = new Error('JetStream said no');
    const r = await readMessage(
      stream(`${'a'.repeat(998)}\r\n${'a'.repeat(500)}`, `${'b'.repeat(998)}\r\n${'b'.repeat(500)}`),
      {
        ...options(),
        maxBytes: 10_000,
        storeStream: async (chunks) => {
          for await (const _ of chunks) throw broken;
          throw new Error('unreachable');
        },
      },
    );
    assert.deepEqual(r, { kind: 'store-failed', error: broken, bytes: 3000 });
  });

  test('a declared SIZE over the inline limit streams from the first chunk, holding nothing back', async () => {
    const budget = new BodyBudget(64 * 1024);
    const { seen, storeStream } = collector(budget);
    const r = await readMessage(stream(...Array.from({ length: 20 }, () => 'q'.repeat(998) + '\r\n')), {
      ...options({ budget }),
      maxBytes: 100_000,
      inlineLimit: 8 * 1024,
      declaredBytes: 20_000,
      storeStream,
    });
    assert.equal(r.kind, 'stored');
    assert.equal(seen.bytes, 20_000);
    assert.ok(seen.maxUsed <= 1000, `at most one chunk held (${seen.maxUsed})`);
  });

  test("a streaming body holds the store's buffer against the budget; over-budget when it cannot", async () => {
    const budget = new BodyBudget(40_000);
    const { seen, storeStream } = collector(budget);
    const body = Array.from({ length: 30 }, () => `${'s'.repeat(998)}\r\n`);
    const reservation = budget.reserve();
    const r = await readMessage(stream(...body), {
      ...options({ budget }),
      reservation,
      maxBytes: 100_000,
      inlineLimit: 2000,
      streamBufferBytes: 32_000,
      storeStream,
    });
    assert.equal(r.kind, 'stored');
    assert.ok(seen.maxUsed >= 32_000 && seen.maxUsed <= 32_000 + 4000, `buffer and chunks (${seen.maxUsed})`);
    reservation.release();
    assert.equal(budget.used, 0);

    const tight = await readMessage(stream(...body), {
      ...options({ budget: new BodyBudget(20_000) }),
      maxBytes: 100_000,
      inlineLimit: 2000,
      streamBufferBytes: 32_000,
      storeStream,
    });
    assert.deepEqual(tight, { kind: 'over-budget', bytes: 30_000 });
  });
});

describe('readMessage: content the MX refuses', () => {
  const big = () => options({ maxBytes: 10_000, inlineLimit: 10_000 });
  test('a NUL anywhere, the \\r\\n\\0.\\r\\n smuggling form included', async () => {
    const r = await readMessage(stream('Subject: a\r\n\r\nx\r\n\0.\r\nMAIL FROM:<a@b>\r\n'), big());
    assert.equal(r.kind, 'bad-content');
    if (r.kind === 'bad-content') assert.equal(r.found, 'nul');
  });

  test('998 octets per line pass; 999 are refused, also when split across chunks', async () => {
    const ok = await readMessage(stream('a\r\n\r\n', 'x'.repeat(500), 'x'.repeat(498), '\r\n'), big());
    assert.equal(ok.kind, 'buffered');
    const long = await readMessage(stream('a\r\n\r\n', 'x'.repeat(500), 'x'.repeat(499), '\r\n'), big());
    assert.equal(long.kind, 'bad-content');
    if (long.kind === 'bad-content') assert.equal(long.found, 'long-line');
  });

  test('a 1,000,000-octet line is refused without keeping it', async () => {
    const r = await readMessage(
      stream('a\r\n\r\n', 'y'.repeat(1_000_000), '\r\n'),
      options({ maxBytes: 2_000_000, inlineLimit: 2_000_000 }),
    );
    assert.equal(r.kind, 'bad-content');
  });
});
