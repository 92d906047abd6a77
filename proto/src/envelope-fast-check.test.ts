/**
 * The hand-written envelope check against the schema: on valid envelopes it
 * takes them (the fast path is used) and returns what zod returns, defaults
 * included; with any field broken in any of many ways it either returns
 * undefined (the schema then decides) or exactly what the schema accepts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { envelopeSchema } from './envelope.ts';
import { checkDecodedEnvelope, UNHANDLED } from './envelope-fast-check.ts';

const sha = 'a'.repeat(64);
const full = {
  v: 1,
  id: '0123456789ABCDEFGHIJ',
  partId: '0123456789ABCDEFGHIJ-1',
  trace: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'a=b' },
  receivedAt: '2026-11-30T06:00:00.123Z',
  source: 'mx',
  receivedBy: 'mx.in.test',
  client: {
    ip: '192.0.2.1',
    port: 25,
    helo: 'client.example',
    reverseName: 'client.example',
    tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' },
    auth: { user: 'u', method: 'PLAIN' },
    extra: { kept: true },
  },
  mailFrom: {
    address: 'sender@sender.test',
    size: 5120,
    body: '8BITMIME',
    smtputf8: false,
    ret: 'HDRS',
    envid: 'env-1',
    requireTls: true,
    original: 'orig@sender.test',
  },
  recipients: [
    {
      address: 'user-1@out.test',
      original: 'user@in.test',
      via: ['user@in.test'],
      notify: ['FAILURE', 'DELAY'],
      orcpt: 'rfc822;user@in.test',
      status: 'deferred',
      lastReply: '451 later',
      forwardOwner: 'user@in.test',
      delivery: { action: 'delayed', remoteMta: 'mx.out.test:25', attempts: 2, dsnSent: false, tls: 'tls' },
    },
    { address: 'user-2@out.test', original: 'user2@in.test', future: 1 },
  ],
  route: { kind: 'smtp', name: 'out.test', host: '127.0.0.1', port: 2525 },
  body: { kind: 'inline', size: 10, sha256: sha },
  prepend: [{ name: 'Received', value: 'from x\r\n by y', addedBy: 'ingress' }],
  removeHeaders: [{ name: 'Authentication-Results', index: 0, reason: 'forged authserv-id' }],
  verdict: { action: 'accept', score: 1.5 },
  auth: {
    spf: 'pass',
    dkim: [{ domain: 'sender.test', result: 'pass', selector: 's1', aligned: true }],
    dmarc: 'pass',
    arc: 'none',
    dmarcDetail: { domain: 'sender.test', result: 'pass', policy: 'none', disposition: 'none' },
    arcChain: { result: 'none', instances: 0 },
  },
  hops: [{ stage: 'ingress', instance: 'mx-1', at: '2026-11-30T06:00:00.123Z' }],
  queueWake: 2,
  newerField: { x: 1 },
};
const minimal = {
  v: 1,
  id: '0123456789',
  receivedAt: '2026-11-30T06:00:00.000Z',
  source: 'dsn',
  receivedBy: 'mx',
  client: { ip: '::1', helo: '' },
  mailFrom: { address: '' },
  recipients: [{ address: 'a@b', original: 'a@b' }],
  route: { kind: 'mx', domain: 'b' },
  body: { kind: 'object', bucket: 'bodies', key: 'k', size: 0, sha256: sha, eightBit: true },
  verdict: { action: 'reject', score: -3, rules: [{ name: 'r', score: 1, detail: 'd' }], reason: 'no' },
};

const BAD: unknown[] = [
  undefined,
  null,
  0,
  -1,
  1.5,
  70000,
  2 ** 60,
  '',
  'x'.repeat(600),
  'a\r\nb',
  'a\nb',
  'a\0b',
  true,
  [],
  {},
  'ZZZ',
  'inline',
  'smtp',
  '2026-13-01T00:00:00.000Z',
  '2026-11-30T06:00:00Z',
];

/** Every path to a value in `v` (objects and arrays included), as key lists. */
function paths(v: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  if (typeof v !== 'object' || v === null) return [prefix];
  const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return [prefix, ...keys.flatMap((k) => paths((v as Record<string | number, unknown>)[k], [...prefix, k]))];
}

function withValue(base: unknown, path: Array<string | number>, value: unknown): unknown {
  const copy = structuredClone(base) as Record<string | number, unknown>;
  let at = copy;
  for (const k of path.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  if (value === undefined) delete at[last];
  else at[last] = structuredClone(value);
  return copy;
}

/** The fast check never accepts what the schema refuses, and never returns anything but the schema's output. */
function agrees(value: unknown): 'fast' | 'schema' {
  const fast = checkDecodedEnvelope(structuredClone(value));
  const schema = envelopeSchema.safeParse(structuredClone(value));
  if (fast === undefined) return 'schema';
  assert.ok(schema.success, `fast check took what the schema refuses: ${JSON.stringify(value)}`);
  assert.deepEqual(fast, schema.data);
  return 'fast';
}

describe('checkDecodedEnvelope', () => {
  it('takes the envelopes stages exchange and returns what the schema returns, defaults and unknown fields included', () => {
    for (const e of [full, minimal]) assert.equal(agrees(e), 'fast');
    const out = checkDecodedEnvelope(structuredClone(minimal))!;
    assert.deepEqual(out.prepend, []);
    assert.deepEqual(out.hops, []);
    assert.equal(out.recipients[0]!.status, 'pending');
    const smtp = checkDecodedEnvelope(structuredClone(full))!;
    assert.equal(smtp.route?.kind === 'smtp' && smtp.route.lmtp, false);
    assert.deepEqual(smtp.verdict?.rules, []);
    assert.deepEqual((smtp as unknown as { newerField: unknown }).newerField, { x: 1 });
  });

  it('with any field broken, takes only what the schema takes, unchanged', () => {
    let fast = 0;
    let schema = 0;
    for (const base of [full, minimal]) {
      for (const path of paths(base)) {
        if (path.length === 0) continue;
        for (const bad of BAD) {
          if (agrees(withValue(base, path, bad)) === 'fast') fast++;
          else schema++;
        }
      }
    }
    // Both ways are exercised: removing an optional field keeps the fast path, a wrong type leaves it.
    assert.ok(fast > 50, `${fast} taken by the fast check`);
    assert.ok(schema > 1000, `${schema} left to the schema`);
  });

  it('looks at every field the schema has (add a new schema field to the check too)', () => {
    for (const [object, fields] of Object.entries(UNHANDLED)) assert.deepEqual(fields, [], object);
  });

  it('sends an envelope with a schema field it does not know to the schema', () => {
    const e = structuredClone(full);
    UNHANDLED.mailFrom.push('requireTls'); // as if the schema had just grown this field
    try {
      assert.equal(agrees(e), 'schema');
      assert.equal(agrees({ ...e, mailFrom: { ...e.mailFrom, requireTls: 'yes' } }), 'schema');
    } finally {
      UNHANDLED.mailFrom.pop();
    }
    assert.equal(agrees(e), 'fast');
  });

  it('leaves what it does not look into to the schema (a TLS client certificate)', () => {
    const e = withValue(full, ['client', 'tls', 'clientCertificate'], {
      subject: 'CN=relay',
      fingerprintSha256: 'b'.repeat(64),
    });
    assert.equal(agrees(e), 'schema');
    assert.ok(envelopeSchema.safeParse(e).success);
  });
});
