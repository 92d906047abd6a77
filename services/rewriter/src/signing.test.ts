/**
 * DKIM and ARC decisions of the rewriter over real keys (mailauth judges the
 * results): our From is signed (both key types), an unauthenticated MX
 * message with our From is not, nor are several From fields, a From without
 * a domain or a domain without a key — each with its reason; forwards from
 * the MX are sealed with cv from the filter's chain result, other mail is
 * not. Start-up refuses bad key configuration naming the key.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { dkimTxtRecord, streamedMessageParts } from '@sluice/dkim';
import { type Envelope, newQueueId, parseEnvelope, partIdOf, sha256Hex } from '@sluice/proto';
import { assembleMessage } from '@sluice/smtp';
import { authenticate } from 'mailauth';
import { rewriterSetup } from './rewriter-setup.ts';
import { needsWholeBody, signAndSeal } from './signing.ts';

const pem = (t: 'rsa' | 'ed25519') =>
  (t === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ed25519')
  ).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
const rsa = pem('rsa');
const ed = pem('ed25519');
const base = { domains: { primary: 'example.org', aliases: ['example.com'] } };
const setup = rewriterSetup(
  parseConfig(
    {
      ...base,
      dkim: {
        keys: [
          { domain: 'example.org', selector: 'r1', privateKey: rsa },
          { domain: 'example.org', selector: 'e1', privateKey: ed },
          { domain: 'example.org', selector: 'r0', privateKey: rsa, active: false },
        ],
      },
    },
    'test',
  ),
);
const records: Record<string, string> = {};
for (const k of setup.signing.keyring.keys)
  records[`${k.selector}._domainkey.${k.domain}`] = dkimTxtRecord(k);
const resolver = async (name: string, type: string) => {
  const r = records[name.toLowerCase()];
  if (type !== 'TXT' || !r) throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
  return [r.match(/.{1,255}/g)!];
};

function envelope(from: string, over: Partial<Envelope> = {}): { env: Envelope; body: Buffer } {
  const body = Buffer.from(`${from}\r\nTo: x@forward.test\r\nSubject: s\r\n\r\nhello\r\n`);
  const id = newQueueId();
  const env = parseEnvelope({
    v: 1,
    id,
    partId: partIdOf(id, 'mx:forward.test', ['x@forward.test']),
    receivedAt: '2026-01-01T00:00:00.000Z',
    source: 'mx',
    receivedBy: 'mx.example.org',
    client: { ip: '192.0.2.1', helo: 'client.test' },
    mailFrom: { address: 'a@example.org' },
    recipients: [{ address: 'x@forward.test', original: 'info@example.org' }],
    route: { kind: 'mx', domain: 'forward.test' },
    body: { kind: 'inline', size: body.length, sha256: sha256Hex(body) },
    prepend: [
      {
        name: 'Authentication-Results',
        value: 'mx.example.org; spf=pass smtp.mailfrom=example.org',
        addedBy: 'filter',
      },
    ],
    auth: { spf: 'pass', dkim: [], dmarc: 'pass', arc: 'none' },
    ...over,
  });
  return { env, body };
}

const now = () => new Date();
const sign = (e: { env: Envelope; body: Buffer }) => signAndSeal(e.env, e.body, { ...setup.signing, now });

describe('DKIM decisions', () => {
  test('our From (authenticated) gets both signatures with the active keys', async () => {
    const e = envelope('From: A <a@example.org>');
    const r = await sign(e);
    assert.equal(r.dkim, 'signed');
    const sigs = r.envelope.prepend.filter((h) => h.name === 'DKIM-Signature');
    assert.equal(sigs.length, 2);
    assert.match(sigs[0]!.value, /s=r1;/);
    assert.match(sigs[1]!.value, /s=e1;/);
    const res = (await authenticate(assembleMessage(r.envelope.prepend, e.body), {
      resolver,
      ip: '192.0.2.10',
      helo: 'mx.example.org',
      sender: 'a@example.org',
      disableBimi: true,
    } as never)) as unknown as { dkim: { results: Array<{ status: { result: string } }> } };
    assert.deepEqual(
      res.dkim.results.map((x) => x.status.result),
      ['pass', 'pass'],
    );
  });

  test('not signed, with the reason: unauthenticated MX mail, several From, no domain, no key', async () => {
    const cases: Array<[ReturnType<typeof envelope>, string]> = [
      [
        envelope('From: a@example.org', { auth: { spf: 'fail', dkim: [], dmarc: 'fail', arc: 'none' } }),
        'unsigned-unauthenticated',
      ],
      [envelope('From: a@example.org\r\nFrom: b@example.org'), 'unsigned-multiple-from-fields'],
      [envelope('From: a@example.org, b@evil.test'), 'unsigned-multiple-author-domains'],
      [envelope('From: a@example.com'), 'unsigned-no-key'],
    ];
    for (const [e, outcome] of cases) {
      const r = await sign(e);
      assert.equal(r.dkim, outcome, outcome);
      assert.equal(r.envelope.prepend.filter((h) => h.name === 'DKIM-Signature').length, 0);
      assert.equal(r.warnings.length >= 1, true);
      assert.ok(r.changes.some((c) => c.startsWith('dkim: not signed')));
    }
    const foreign = await sign(envelope('From: someone@sender.test'));
    assert.equal(foreign.dkim, 'not-ours');
  });

  test('keys set aside by the DNS check are not used; with none left the mail goes unsigned', async () => {
    const [r1, e1] = setup.signing.keyring.activeFor('example.org');
    const one = await signAndSeal(envelope('From: a@example.org').env, envelope('From: a@example.org').body, {
      ...setup.signing,
      now,
      setAside: new Set([e1!]),
    });
    assert.equal(one.dkim, 'signed');
    assert.equal(one.envelope.prepend.filter((h) => h.name === 'DKIM-Signature').length, 1);
    const e = envelope('From: a@example.org');
    const none = await signAndSeal(e.env, e.body, { ...setup.signing, now, setAside: new Set([r1!, e1!]) });
    assert.equal(none.dkim, 'unsigned-key-not-published');
  });

  test('submission-style sources sign without DMARC (the door authenticated the sender)', async () => {
    const r = await sign(envelope('From: a@example.org', { source: 'submission', auth: undefined }));
    assert.equal(r.dkim, 'signed');
  });
});

describe('ARC decisions', () => {
  test('a forward from the MX is sealed with cv from the filter; mailauth validates the chain', async () => {
    const e = envelope('From: s@sender.test');
    const r = await sign(e);
    assert.equal(r.arc, 'sealed');
    assert.deepEqual(
      r.envelope.prepend.slice(0, 3).map((h) => h.name),
      ['ARC-Seal', 'ARC-Message-Signature', 'ARC-Authentication-Results'],
    );
    assert.match(r.envelope.prepend[2]!.value, /^i=1; mx\.example\.org; spf=pass/);
    const res = (await authenticate(assembleMessage(r.envelope.prepend, e.body), {
      resolver,
      ip: '192.0.2.10',
      helo: 'mx.example.org',
      sender: 'x@srs.example.org',
      disableBimi: true,
    } as never)) as unknown as { arc: { status: { result: string } } };
    assert.equal(res.arc.status.result, 'pass');
  });

  test('mail to an internal host is not sealed', async () => {
    const e = envelope('From: s@sender.test', {
      route: { kind: 'smtp', name: 'example.org', host: '10.0.0.1', port: 24, lmtp: true },
    });
    assert.equal((await sign(e)).arc, 'not-forward');
  });
});

describe('start-up checks', () => {
  test('bad keys and a dangling arc.selector fail naming the key', () => {
    assert.throws(
      () =>
        rewriterSetup(
          parseConfig(
            { ...base, dkim: { keys: [{ domain: 'example.org', selector: 'bad', privateKey: 'nope' }] } },
            't',
          ),
        ),
      /dkim\.keys\[0\] \(bad\._domainkey\.example\.org\): not a readable PEM/,
    );
    assert.throws(
      () => rewriterSetup(parseConfig({ ...base, arc: { selector: 'missing' } }, 't')),
      /arc\.selector: no dkim\.keys entry for missing\._domainkey\.example\.org/,
    );
    assert.throws(
      () =>
        parseConfig(
          { ...base, dkim: { keys: [{ domain: 'other.test', selector: 's', privateKey: rsa }] } },
          't',
        ),
      /other\.test is not one of our domains/,
    );
  });
});

describe('a streamed body (large, object store)', () => {
  test('is signed over its streamed hash exactly as the loaded body would be; mailauth verifies it', async () => {
    const at = new Date('2026-11-30T04:00:00Z');
    const ctx = { ...setup.signing, arcKey: undefined, now: () => at };
    const e = envelope('From: A <a@example.org>');
    const big = Buffer.concat([
      e.body,
      Buffer.from(`${'a line  with\ttabs and trailing space \r\n'.repeat(20_000)}\r\n \r\n\r\n`),
    ]);
    assert.equal(needsWholeBody(e.env, ctx), false);
    // Chunks cut inside CRLFs and whitespace, as an object store's reads fall.
    const chunks: Buffer[] = [];
    for (let at = 0; at < big.length; at += 65_537) chunks.push(big.subarray(at, at + 65_537));
    const streamed = await signAndSeal(e.env, await streamedMessageParts(Readable.from(chunks)), ctx);
    const loaded = await signAndSeal(e.env, big, ctx);
    assert.equal(streamed.dkim, 'signed');
    assert.deepEqual(streamed.envelope.prepend, loaded.envelope.prepend);
    const res = (await authenticate(assembleMessage(streamed.envelope.prepend, big), {
      resolver,
      ip: '192.0.2.10',
      helo: 'mx.example.org',
      sender: 'a@example.org',
      disableBimi: true,
    } as never)) as unknown as { dkim: { results: Array<{ status: { result: string } }> } };
    assert.deepEqual(
      res.dkim.results.map((x) => x.status.result),
      ['pass', 'pass'],
    );
  });

  test('a forward that will be sealed needs the whole body (ARC)', () => {
    assert.equal(needsWholeBody(envelope('From: a@example.org').env, setup.signing), true);
  });
});
