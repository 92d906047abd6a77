import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Objm } from '@nats-io/obj';
import { objectStores, sha256Hex } from '@sluice/proto';
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

async function* chunksOf(body: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let pos = 0; pos < body.length; pos += size) yield body.subarray(pos, pos + size);
}

async function drain(stream: NodeJS.ReadableStream): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function bodyChunkMessages(): Promise<number> {
  const jsm = await bus.js.jetstreamManager();
  return (await jsm.streams.info(`OBJ_${objectStores.bodies}`)).state.messages;
}

test('a streamed body goes to the object store chunk by chunk and streams back intact', async () => {
  const body = Buffer.alloc(5 * 1024 * 1024 + 17, 'seven bit text\r\n');
  const stored = await bus.storeBodyStream('01JTESTQUEUEID0000000011', chunksOf(body, 64 * 1024));
  assert.equal(stored.ref.kind, 'object');
  assert.equal(stored.ref.size, body.length);
  assert.equal(stored.ref.sha256, sha256Hex(body));
  assert.equal(stored.ref.kind === 'object' && stored.ref.eightBit, false);
  const back = await drain(await bus.openBody(envelopeFor(new Uint8Array(0), { body: stored.ref })));
  assert.deepEqual(back, { sha256: sha256Hex(body), bytes: body.length });

  const eight = Buffer.concat([Buffer.alloc(300 * 1024, 'a'), Buffer.from('Grüße\r\n')]);
  const stored8 = await bus.storeBodyStream('01JTESTQUEUEID0000000012', chunksOf(eight, 1000));
  assert.equal(stored8.ref.kind === 'object' && stored8.ref.eightBit, true);
});

test('a streamed body whose source fails half way leaves nothing in the object store', async () => {
  const before = await bodyChunkMessages();
  const refused = new Error('refused half way');
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield* chunksOf(randomBytes(3 * 1024 * 1024), 64 * 1024);
    throw refused;
  }
  await assert.rejects(bus.storeBodyStream('01JTESTQUEUEID0000000013', failing()), (err) => err === refused);
  const store = await new Objm(bus.js).open(objectStores.bodies);
  assert.equal(await store.info('01JTESTQUEUEID0000000013'), null, 'no object entry');
  assert.equal(await bodyChunkMessages(), before, 'the chunks written before the failure are purged');
});

test('an opened body fails at the end when it does not match its envelope, and when it is gone', async () => {
  const body = randomBytes(600 * 1024);
  const stored = await bus.storeBodyStream('01JTESTQUEUEID0000000014', chunksOf(body, 64 * 1024));
  const wrong = envelopeFor(new Uint8Array(0), {
    body: { ...stored.ref, sha256: sha256Hex(new Uint8Array(1)) },
  });
  await assert.rejects(drain(await bus.openBody(wrong)), (err: Error) => {
    assert.ok(err instanceof BodyUnavailableError);
    assert.match(err.message, /does not match the sha256/);
    return true;
  });
  const longer = envelopeFor(new Uint8Array(0), { body: { ...stored.ref, size: body.length + 1 } });
  await assert.rejects(bus.openBody(longer), /envelope .* says/);
  await bus.deleteBody(stored.ref);
  const env = envelopeFor(new Uint8Array(0), { body: stored.ref });
  await assert.rejects(bus.openBody(env), /not in the object store/);
});
