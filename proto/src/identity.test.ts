import assert from 'node:assert/strict';
import { test } from 'node:test';
import { base32, CONTENT_HASH_LENGTH } from './content-hash.ts';
import { dedupIds } from './dedup-ids.ts';
import { partIdSchema } from './envelope.ts';
import { isLegacyPartId, partIdOf } from './part-id.ts';
import { newQueueId } from './queue-id.ts';

const Q = '01JTESTQUEUEID0000000000AB';
/** A NATS subject token (no separators, wildcards or whitespace) that is also a KV key. */
const TOKEN_AND_KEY = /^[-_=a-zA-Z0-9]+$/;

test('base32 is Crockford, most significant bit first', () => {
  assert.equal(base32(new Uint8Array([0xff])), 'ZW');
  assert.equal(base32(new Uint8Array([0, 0, 0, 0, 0])), '00000000');
  assert.equal(base32(new Uint8Array([0x08, 0x86, 0x42, 0x98, 0xe8])), '12345678');
});

test('part ids: deterministic, independent of recipient order, valid token, key and schema', () => {
  const a = partIdOf(Q, 'smtp:b.test', ['alice@b.test', 'bob@b.test']);
  assert.equal(a, partIdOf(Q, 'smtp:b.test', ['alice@b.test', 'bob@b.test']));
  assert.equal(a, partIdOf(Q, 'smtp:b.test', ['bob@b.test', 'alice@b.test']));
  assert.match(a, new RegExp(`^${Q}-[0-9A-Z]{${CONTENT_HASH_LENGTH}}$`));
  assert.equal(CONTENT_HASH_LENGTH, 26);
  assert.match(a, TOKEN_AND_KEY);
  assert.equal(partIdSchema.parse(a), a);
  assert.equal(isLegacyPartId(a), false);
});

test('part ids: distinct content, distinct ids', () => {
  const ids = [
    partIdOf(Q, 'smtp:b.test', ['alice@b.test', 'bob@b.test']),
    partIdOf(Q, 'smtp:b.test', ['alice@b.test']),
    partIdOf(Q, 'smtp:b.test', ['alice@b.test', 'bob@b.test', 'carol@b.test']),
    partIdOf(Q, 'mx:b.test', ['alice@b.test', 'bob@b.test']),
    partIdOf(Q, 'smtp:relay', ['alice@b.test', 'bob@b.test']),
    partIdOf('01JTESTQUEUEID0000000000AC', 'smtp:b.test', ['alice@b.test', 'bob@b.test']),
    // No ambiguity from joining: one recipient "a,b" is not two recipients.
    partIdOf(Q, 'smtp:b.test', ['alice@b.test,bob@b.test']),
  ];
  assert.equal(new Set(ids).size, ids.length);
  // Many random contents: no collision among them.
  const many = new Set<string>();
  for (let i = 0; i < 10_000; i++) many.add(partIdOf(Q, 'mx:x.test', [`u${i}@x.test`]));
  assert.equal(many.size, 10_000);
});

test('positional part ids of the first releases are still read, and recognised', () => {
  assert.equal(partIdSchema.parse(`${Q}-1`), `${Q}-1`);
  assert.equal(partIdSchema.parse(`${Q}-12`), `${Q}-12`);
  assert.equal(isLegacyPartId(`${Q}-2`), true);
  assert.equal(isLegacyPartId(Q), false);
  for (const bad of [`${Q}-`, `${Q}-abc`, `${Q}-12345`, `${Q}.1`, `${Q}-${'A'.repeat(25)}`]) {
    assert.equal(partIdSchema.safeParse(bad).success, false, bad);
  }
});

test('dedup ids: one format per publish, deterministic, distinct per content', () => {
  const part = partIdOf(Q, 'mx:x.test', ['a@x.test']);
  assert.equal(dedupIds.rewrite(part), `${part}:rewrite`);
  assert.equal(dedupIds.deliver(part), `${part}:deliver`);
  assert.equal(dedupIds.deadLetter('SLUICE_REWRITE', 42), 'dead:SLUICE_REWRITE:42');

  const branch = { recipient: 'ghost@example.org', at: 'gone@example.org', kind: 'unknown' };
  const dead = dedupIds.resolverDead(Q, branch);
  assert.equal(dead, dedupIds.resolverDead(Q, { ...branch }));
  assert.match(dead, new RegExp(`^${Q}:resolver-dead:[0-9A-Z]{26}$`));
  const others = [
    dedupIds.resolverDead(Q, { ...branch, recipient: 'ghost2@example.org' }),
    dedupIds.resolverDead(Q, { ...branch, at: 'other@example.org' }),
    dedupIds.resolverDead(Q, { ...branch, kind: 'loop' }),
    dedupIds.resolverDead(newQueueId(), branch),
  ];
  assert.equal(new Set([dead, ...others]).size, 5);

  const env = {
    mailFrom: { address: 's@sender.test' },
    recipients: [{ address: 'a@example.org', original: 'a@example.org', status: 'pending' as const }],
    body: { kind: 'inline' as const, size: 1, sha256: 'a'.repeat(64) },
    client: { ip: '192.0.2.1', helo: 'h' },
  };
  assert.match(dedupIds.accepted(env), /^mx:[0-9a-f]{64}$/);
  assert.equal(dedupIds.accepted(env), dedupIds.accepted({ ...env }));
  assert.notEqual(
    dedupIds.accepted(env),
    dedupIds.accepted({ ...env, client: { ip: '192.0.2.2', helo: 'h' } }),
  );
});
