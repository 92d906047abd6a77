/**
 * Write coalescing against a real nats-server: the commands of one turn
 * leave in a few large socket writes (not one per 32 KiB), and every
 * message still arrives, in order.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type NatsTestServer, startNats, waitUntil } from '@sluice/test-harness';
import { COALESCED_BYTES, coalesceWrites } from './write-coalescing.ts';

let nats: NatsTestServer;
before(async () => {
  nats = await startNats();
});
after(() => nats.stop());

it('writes a turn of publishes in chunks of up to COALESCED_BYTES, and delivers them all in order', async () => {
  const pub: NatsConnection = await connect({ servers: nats.url });
  const sub: NatsConnection = await connect({ servers: nats.url });
  try {
    assert.equal(coalesceWrites(pub), true);
    const transport = (pub as unknown as { protocol: { transport: { send(b: Uint8Array): void } } }).protocol
      .transport;
    const sizes: number[] = [];
    const send = transport.send.bind(transport);
    transport.send = (b: Uint8Array) => {
      sizes.push(b.length);
      send(b);
    };
    const got: number[] = [];
    const s = sub.subscribe('coalesce.test');
    void (async () => {
      for await (const m of s) got.push(new DataView(m.data.buffer, m.data.byteOffset).getUint32(0));
    })();
    await sub.flush();
    const count = 200;
    const body = Buffer.alloc(5120, 0x61);
    for (let i = 0; i < count; i++) {
      body.writeUInt32BE(i, 0);
      pub.publish('coalesce.test', Buffer.from(body)); // 200 x 5 KB in one turn: ~1 MB
    }
    await waitUntil(
      () => `${got.length} of ${count} messages`,
      () => (got.length === count ? true : undefined),
      { timeoutMs: 10_000 },
    );
    assert.deepEqual(
      got,
      Array.from({ length: count }, (_, i) => i),
    );
    const total = sizes.reduce((a, b) => a + b, 0);
    assert.ok(total > count * 5120, `${total} bytes written`);
    // The client alone writes whenever 32 KiB are pending (~32 writes here).
    assert.ok(sizes.length <= Math.ceil(total / COALESCED_BYTES) + 1, `writes: ${sizes.join(', ')}`);
  } finally {
    await pub.close();
    await sub.close();
  }
});
