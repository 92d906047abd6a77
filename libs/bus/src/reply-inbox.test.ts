/**
 * The bus' shared reply inbox on a real nats-server: replies find their
 * request, failures come as the client's own error types, a reply after the
 * timeout is ignored, and close() fails what is still waiting.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DiscardPolicy, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, errors, type NatsConnection } from '@nats-io/transport-node';
import { type NatsTestServer, startNats } from '@sluice/test-harness';
import { JetStreamPublishError, ReplyInbox } from './reply-inbox.ts';
import { encoder } from './test-fixtures.ts';

let nats: NatsTestServer;
let nc: NatsConnection;
let server: NatsConnection;

before(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  server = await connect({ servers: nats.url });
  // Echo with a delay given in the request ("<ms>:<text>").
  server.subscribe('echo', {
    callback: (_err, msg) => {
      const [ms, text] = msg.string().split(':');
      setTimeout(() => msg.respond(encoder.encode(text)), Number(ms));
    },
  });
  // A real stream that holds one message and refuses new ones when full.
  const jsm = await jetstreamManager(server);
  await jsm.streams.add({
    name: 'INBOX_TEST',
    subjects: ['stream.>'],
    max_msgs: 1,
    discard: DiscardPolicy.New,
    storage: StorageType.Memory,
  });
  await server.flush();
});
after(async () => {
  await nc?.close();
  await server?.close();
  await nats?.stop();
});

test('concurrent requests each get their own reply', async () => {
  const inbox = new ReplyInbox(nc);
  const replies = await Promise.all(
    ['30:a', '0:b', '10:c'].map((q) => inbox.request('echo', encoder.encode(q), { timeoutMs: 2000 })),
  );
  assert.deepEqual(
    replies.map((r) => r.string()),
    ['a', 'b', 'c'],
  );
  assert.equal(inbox.pending, 0);
  inbox.close();
});

test('no subscriber is NoRespondersError; no reply in time is TimeoutError and the late reply is ignored', async () => {
  const inbox = new ReplyInbox(nc);
  await assert.rejects(
    inbox.request('nobody.here', encoder.encode('x'), { timeoutMs: 2000 }),
    errors.NoRespondersError,
  );
  await assert.rejects(
    inbox.request('echo', encoder.encode('200:late'), { timeoutMs: 50 }),
    errors.TimeoutError,
  );
  // The late reply arrives while this one waits; it must not answer this one.
  const next = await inbox.request('echo', encoder.encode('300:mine'), { timeoutMs: 2000 });
  assert.equal(next.string(), 'mine');
  inbox.close();
});

test('publish reads the PubAck: sequence, duplicate flag, or the stream error', async () => {
  const inbox = new ReplyInbox(nc);
  assert.deepEqual(await inbox.publish('stream.a', encoder.encode('m'), { timeout: 2000, msgID: 'first' }), {
    seq: 1,
    duplicate: false,
  });
  assert.deepEqual(await inbox.publish('stream.a', encoder.encode('m'), { timeout: 2000, msgID: 'first' }), {
    seq: 1,
    duplicate: true,
  });
  await assert.rejects(
    inbox.publish('stream.b', encoder.encode('m'), { timeout: 2000, msgID: 'second' }),
    (err: unknown) => err instanceof JetStreamPublishError && /maximum messages/.test(err.message),
  );
  await assert.rejects(
    inbox.publish('no.stream', encoder.encode('m'), { timeout: 2000 }),
    /jetstream is not enabled: no responders/,
  );
  inbox.close();
});

test('close() fails the requests still waiting', async () => {
  const inbox = new ReplyInbox(nc);
  const waiting = inbox.request('echo', encoder.encode('1000:too late'), { timeoutMs: 5000 });
  inbox.close();
  await assert.rejects(waiting, /connection closing: no reply on echo/);
});
