import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { sha256Hex } from '@sluice/proto';
import { BodyUnavailableError, inlineLimit } from './body-store.ts';
import type { Bus } from './bus.ts';
import { InvalidLedgerKeyError, ledgerKey } from './ledger.ts';
import { envelopeFor, startTestBus } from './test-fixtures.ts';

let bus: Bus;
let stopBus: () => Promise<void>;
before(async () => {
  ({ bus, stop: stopBus } = await startTestBus());
});
after(() => stopBus());

test('inlineLimit leaves 64 KiB of max_payload for the envelope', () => {
  assert.equal(inlineLimit(256 * 1024, 1024 * 1024), 256 * 1024);
  assert.equal(inlineLimit(8 * 1024 * 1024, 1024 * 1024), 1024 * 1024 - 64 * 1024);
  assert.equal(bus.maxPayload, 1024 * 1024, 'nats-server default max_payload');
});

test('a 1 KB body travels inline', async () => {
  const body = randomBytes(1024);
  const stored = await bus.storeBody('01JTESTQUEUEID0000000001', body);
  assert.equal(stored.ref.kind, 'inline');
  assert.equal(stored.ref.sha256, sha256Hex(body));
  assert.equal(stored.inline, body);
  const env = envelopeFor(body, { body: stored.ref });
  assert.deepEqual(Buffer.from(await bus.loadBody(env, stored.inline)), body);
});

test('a 10 MB body goes to the object store and comes back intact', async (t) => {
  const body = randomBytes(10 * 1024 * 1024);
  const t0 = performance.now();
  const stored = await bus.storeBody('01JTESTQUEUEID0000000002', body);
  const putMs = performance.now() - t0;
  assert.equal(stored.ref.kind, 'object');
  assert.equal(stored.inline, undefined);
  assert.equal(stored.ref.size, body.length);
  assert.equal(stored.ref.sha256, sha256Hex(body));
  const env = envelopeFor(new Uint8Array(0), { body: stored.ref });
  const t1 = performance.now();
  const back = await bus.loadBody(env);
  const getMs = performance.now() - t1;
  assert.equal(sha256Hex(back), sha256Hex(body));
  assert.equal(back.length, body.length);
  // Not an assertion on speed, a record of it.
  t.diagnostic(`10 MB object put ${putMs.toFixed(0)} ms, get ${getMs.toFixed(0)} ms`);

  await bus.deleteBody(stored.ref);
  await assert.rejects(bus.loadBody(env), (err: Error) => {
    assert.ok(err instanceof BodyUnavailableError);
    assert.match(err.message, /not in the object store/);
    return true;
  });
  await bus.deleteBody(stored.ref); // deleting twice is fine
});

test('a body that does not match its envelope is refused', async () => {
  const body = randomBytes(400 * 1024);
  const stored = await bus.storeBody('01JTESTQUEUEID0000000003', body);
  assert.equal(stored.ref.kind, 'object');
  const wrong = envelopeFor(new Uint8Array(0), {
    body: { ...stored.ref, sha256: sha256Hex(new Uint8Array(1)) },
  });
  await assert.rejects(bus.loadBody(wrong), /does not match the sha256/);
  const short = envelopeFor(new Uint8Array(0), { body: { ...stored.ref, size: 10 } });
  await assert.rejects(bus.loadBody(short), /envelope .* says 10/);
  const inline = envelopeFor(new Uint8Array(3));
  await assert.rejects(bus.loadBody(inline), /no bytes were given/);
});

test('the delivery ledger stores JSON entries under hashed keys', async () => {
  const key = ledgerKey('01JTESTQUEUEID0000000004', 'Bob@Example.NET');
  assert.match(key, /^01JTESTQUEUEID0000000004\.[0-9a-f]{32}$/);
  assert.equal(await bus.ledgerGet(key), null);
  const entry = { status: 'delivered' as const, at: new Date().toISOString(), reply: '250 2.0.0 OK' };
  await bus.ledgerPut(key, entry);
  assert.deepEqual(await bus.ledgerGet(key), entry);
  await assert.rejects(bus.ledgerGet('bob@example.net'), InvalidLedgerKeyError);
  await assert.rejects(bus.ledgerPut('a b', entry), /hash addresses/);
});
