/**
 * The egress' session pool against a real SMTP server (the harness sink):
 * sessions are reused per destination, limited per destination, reset after a
 * failed transaction, dropped when the server ended them, and closed when idle.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, beforeEach, test } from 'node:test';
import { type SmtpSink, startSmtpSink, waitUntil } from '@sluice/test-harness';
import type { Candidate } from './destination.ts';
import { SessionPool } from './session-pool.ts';
import { type SessionOptions, SmtpSession } from './smtp-session.ts';

let sink: SmtpSink;
let candidate: Candidate;
const options: SessionOptions = {
  heloName: 'egress.test',
  connectTimeoutMs: 2000,
  greetingTimeoutMs: 5000,
  socketTimeoutMs: 5000,
  requireTls: false,
  ignoreTlsErrors: true,
};

before(async () => {
  sink = await startSmtpSink({
    port: 0,
    failWith: (rcpt) => (rcpt.startsWith('refused') ? { code: 550, message: 'no such user' } : undefined),
    failData: (m) =>
      m.raw.includes(Buffer.from('Subject: go away')) ? { code: 421, message: 'closing' } : undefined,
  });
  candidate = { host: '127.0.0.1', port: sink.port, lmtp: false, label: `127.0.0.1:${sink.port}` };
});
beforeEach(() => sink.clear());
after(() => sink?.stop());

/** A pool whose opener counts the sessions it opened. */
function countingPool(opts: { maxPerDestination?: number; idleTimeoutMs?: number } = {}) {
  const opened = { count: 0 };
  const pool = new SessionPool(
    { maxPerDestination: opts.maxPerDestination ?? 4, idleTimeoutMs: opts.idleTimeoutMs ?? 10_000 },
    (c, o) => {
      opened.count++;
      return SmtpSession.open(c, o);
    },
  );
  return { pool, opened };
}

function message(subject: string): { size: number; open(): Promise<Readable> } {
  const bytes = Buffer.from(`From: a@sender.test\r\nSubject: ${subject}\r\n\r\nbody\r\n`);
  return { size: bytes.length, open: async () => Readable.from([bytes]) };
}

async function deliver(pool: SessionPool, subject: string, to = ['bob@example.net']) {
  const session = await pool.acquire(candidate, options);
  const replies = await session.send({
    from: 'a@sender.test',
    to,
    message: message(subject),
    eightBit: false,
  });
  pool.release(
    session,
    replies.every((r) => r.code >= 200 && r.code < 300),
  );
  return replies;
}

test('deliveries one after another reuse one session', async () => {
  const { pool, opened } = countingPool();
  try {
    for (const n of [1, 2, 3]) assert.equal((await deliver(pool, `reuse ${n}`))[0]!.code, 250);
    assert.equal(opened.count, 1);
    const got = await sink.waitFor(3);
    assert.equal(new Set(got.map((m) => m.session)).size, 1, 'all three came over one connection');
  } finally {
    pool.close();
  }
});

test('at most maxPerDestination sessions are open; the next delivery waits for one', async () => {
  const { pool, opened } = countingPool({ maxPerDestination: 1 });
  try {
    const first = await pool.acquire(candidate, options);
    let secondGot = false;
    const second = pool.acquire(candidate, options).then((s) => {
      secondGot = true;
      return s;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(secondGot, false, 'the second waits while the only session is in use');
    assert.deepEqual(pool.stats(candidate, options), { open: 1, idle: 0 });
    pool.release(first, true);
    const s2 = await second;
    assert.equal(s2, first, 'it gets the released session');
    assert.equal(opened.count, 1);
    pool.release(s2, true);
  } finally {
    pool.close();
  }
});

test('after a transaction with a refusal the session is reset, then reused', async () => {
  const { pool, opened } = countingPool();
  try {
    const refused = await deliver(pool, 'all refused', ['refused@example.net']);
    assert.equal(refused[0]!.code, 550);
    await waitUntil('the reset session back in the pool', () => pool.stats(candidate, options).idle === 1);
    assert.equal((await deliver(pool, 'after reset'))[0]!.code, 250);
    assert.equal(opened.count, 1);
    await sink.waitFor((m) => m.raw.includes(Buffer.from('Subject: after reset')));
  } finally {
    pool.close();
  }
});

test('a session the server ended (421) is not reused', async () => {
  const { pool, opened } = countingPool();
  try {
    assert.equal((await deliver(pool, 'go away'))[0]!.code, 421);
    assert.deepEqual(pool.stats(candidate, options), { open: 0, idle: 0 });
    assert.equal((await deliver(pool, 'fresh'))[0]!.code, 250);
    assert.equal(opened.count, 2);
  } finally {
    pool.close();
  }
});

test('idle sessions are closed after the idle timeout; 0 means no reuse at all', async () => {
  const { pool } = countingPool({ idleTimeoutMs: 100 });
  try {
    await deliver(pool, 'idle');
    assert.deepEqual(pool.stats(candidate, options), { open: 1, idle: 1 });
    await waitUntil('the idle session to be closed', () => pool.stats(candidate, options).open === 0);
  } finally {
    pool.close();
  }
  const off = countingPool({ idleTimeoutMs: 0 });
  try {
    await deliver(off.pool, 'no reuse 1');
    await deliver(off.pool, 'no reuse 2');
    assert.equal(off.opened.count, 2);
    assert.deepEqual(off.pool.stats(candidate, options), { open: 0, idle: 0 });
  } finally {
    off.pool.close();
  }
});
