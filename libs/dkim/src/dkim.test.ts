/**
 * DKIM signing and ARC sealing, judged by two independent verifiers: dkimpy
 * (Debian python3-dkim) and mailauth. Dual signatures (rsa-sha256 and
 * ed25519-sha256, RFC 8463) both verify; a From or Subject added after
 * signing, or a changed body, breaks them (over-signing, no l=); an ARC set
 * we add validates as a chain (cv=pass), also on top of an earlier one. Key
 * loading fails naming the key; the author domain follows DMARC's rules.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { DKIMPY_PYTHON, dkimpyVerify } from '@sluice/test-harness';
import { authenticate } from 'mailauth';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { arcSeal } from './arc-seal.ts';
import { authorDomain } from './author.ts';
import { buildKeyring, DkimKeyError, dkimTxtRecord } from './keys.ts';
import { splitMessage } from './message-headers.ts';
import { dkimSignature, dkimSignatureOffThread } from './sign.ts';

const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
  type: 'pkcs8',
  format: 'pem',
}) as string;
const edPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const ring = buildKeyring([
  { domain: 'example.org', selector: 'r2026', privateKey: rsaPem, active: true },
  { domain: 'example.org', selector: 'e2026', privateKey: edPem, active: true },
]);
const records: Record<string, string> = {};
for (const k of ring.keys) records[`${k.selector}._domainkey.${k.domain}`] = dkimTxtRecord(k);

/** A mailauth resolver answering TXT from `records` (split into 255-octet strings as DNS would). */
const resolver = async (name: string, type: string) => {
  const r = records[name.toLowerCase().replace(/\.$/, '')];
  if (type !== 'TXT' || !r) throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
  return [r.match(/.{1,255}/g)!];
};

const original = Buffer.from(
  [
    'From: Alice <alice@example.org>',
    'To: bob@elsewhere.test',
    'Subject: quarterly   numbers',
    'Date: Mon, 30 Nov 2026 03:00:00 +0000',
    'Message-ID: <m1@example.org>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hello  Bob,\t ',
    '',
    'naïve café.',
    '',
    '',
  ].join('\r\n'),
);

function signed(message: Buffer, now = new Date()): Buffer {
  const { headers, body } = splitMessage(message);
  const sigs = ring
    .activeFor('example.org')
    .map((k) => `DKIM-Signature: ${dkimSignature(headers, body, k, { now })}\r\n`);
  return Buffer.concat([Buffer.from(sigs.join('')), message]);
}

const haveDkimpy = existsSync(DKIMPY_PYTHON) && existsSync('/usr/lib/python3/dist-packages/dkim');

describe('DKIM signing', () => {
  test('rsa-sha256 and ed25519-sha256 signatures verify with mailauth', async () => {
    const msg = signed(original);
    const r = await dkimVerify(msg, { resolver });
    const results = r.results.map((x) => [x.signingDomain, x.status.result]);
    assert.deepEqual(results, [
      ['example.org', 'pass'],
      ['example.org', 'pass'],
    ]);
    const text = msg.toString();
    assert.match(text, /a=rsa-sha256/);
    assert.match(text, /a=ed25519-sha256/);
    assert.match(text, /c=relaxed\/relaxed/);
    assert.match(text.replace(/\r\n\s+/g, ' '), /h=from:from:/, 'From over-signed');
    assert.doesNotMatch(text, /[\s;]l=/, 'no l= tag');
  });

  test('signed on the thread pool: the same field value as signed in line (RSA PKCS#1 v1.5 and Ed25519 are deterministic), verified by dkimpy', {
    skip: !haveDkimpy && 'python3-dkim not installed',
  }, async () => {
    const now = new Date('2026-11-30T08:00:00Z');
    const { headers, body } = splitMessage(original);
    const keys = ring.activeFor('example.org');
    const offThread = await Promise.all(keys.map((k) => dkimSignatureOffThread(headers, body, k, { now })));
    assert.deepEqual(
      offThread,
      keys.map((k) => dkimSignature(headers, body, k, { now })),
    );
    const msg = Buffer.concat([
      Buffer.from(offThread.map((v) => `DKIM-Signature: ${v}\r\n`).join('')),
      original,
    ]);
    assert.deepEqual(
      (await dkimpyVerify(msg, records)).dkim.map((d) => d.ok),
      [true, true],
    );
  });

  test('both verify with dkimpy; an added From or Subject, or a changed body, fails', {
    skip: !haveDkimpy && 'python3-dkim not installed',
  }, async () => {
    const msg = signed(original);
    assert.deepEqual(
      (await dkimpyVerify(msg, records)).dkim.map((d) => d.ok),
      [true, true],
    );
    const sigEnd = msg.indexOf('From: Alice');
    const withFrom = Buffer.concat([
      msg.subarray(0, sigEnd),
      Buffer.from('From: ceo@example.org\r\n'),
      msg.subarray(sigEnd),
    ]);
    assert.deepEqual(
      (await dkimpyVerify(withFrom, records)).dkim.map((d) => d.ok),
      [false, false],
    );
    const withSubject = Buffer.concat([msg, Buffer.alloc(0)])
      .toString()
      .replace('Subject:', 'Subject: urgent\r\nSubject:');
    assert.deepEqual(
      (await dkimpyVerify(Buffer.from(withSubject), records)).dkim.map((d) => d.ok),
      [false, false],
    );
    const body = Buffer.from(msg.toString().replace('Hello  Bob', 'Hello  Eve'));
    assert.deepEqual(
      (await dkimpyVerify(body, records)).dkim.map((d) => d.ok),
      [false, false],
    );
    // Relaxed canonicalization: whitespace changes in headers and body still verify.
    const ws = Buffer.from(
      msg.toString().replace('Subject: quarterly   numbers', 'Subject:  quarterly numbers '),
    );
    assert.deepEqual(
      (await dkimpyVerify(ws, records)).dkim.map((d) => d.ok),
      [true, true],
    );
  });

  test('an empty body and a message without a blank line sign and verify', async () => {
    for (const m of ['From: a@example.org\r\nSubject: x\r\n\r\n', 'From: a@example.org\r\nSubject: x\r\n']) {
      const r = await dkimVerify(signed(Buffer.from(m)), { resolver });
      assert.deepEqual(
        r.results.map((x) => x.status.result),
        ['pass', 'pass'],
        m,
      );
    }
  });
});

describe('ARC sealing', () => {
  const authResults = 'mx.example.org; spf=fail smtp.mailfrom=sender.test; dkim=none; dmarc=none';
  const rsa = ring.find('example.org', 'r2026')!;

  async function seal(message: Buffer, cv: 'none' | 'pass' | 'fail'): Promise<Buffer> {
    const r = await arcSeal(message, { key: rsa, authResults, cv });
    assert.ok(r.ok, !r.ok ? r.reason : '');
    const names = r.ok ? r.headers.map((h) => h.name) : [];
    assert.deepEqual(names, ['ARC-Seal', 'ARC-Message-Signature', 'ARC-Authentication-Results']);
    const head = r.ok ? r.headers.map((h) => `${h.name}: ${h.value}\r\n`).join('') : '';
    return Buffer.concat([Buffer.from(head), message]);
  }

  test('a first ARC set (cv=none) and a second on top (cv=pass) validate with mailauth', async () => {
    const once = await seal(original, 'none');
    assert.match(once.toString(), /ARC-Authentication-Results: i=1; mx\.example\.org; spf=fail/);
    const r1 = await authenticate(once, {
      resolver,
      ip: '127.0.0.1',
      helo: 'x',
      sender: 'a@example.org',
      disableBimi: true,
    } as never);
    assert.equal((r1 as { arc: { status: { result: string } } }).arc.status.result, 'pass');
    const twice = await seal(once, 'pass');
    assert.match(twice.toString(), /ARC-Seal: i=2;/);
    const r2 = await authenticate(twice, {
      resolver,
      ip: '127.0.0.1',
      helo: 'x',
      sender: 'a@example.org',
      disableBimi: true,
    } as never);
    assert.equal((r2 as { arc: { status: { result: string } } }).arc.status.result, 'pass');
  });

  test('dkimpy validates the chain; a changed body breaks it', {
    skip: !haveDkimpy && 'python3-dkim not installed',
  }, async () => {
    const twice = await seal(await seal(original, 'none'), 'pass');
    assert.equal((await dkimpyVerify(twice, records)).arc.cv, 'pass');
    const tampered = Buffer.from(twice.toString().replace('Hello  Bob', 'Hello  Eve'));
    assert.equal((await dkimpyVerify(tampered, records)).arc.cv, 'fail');
  });
});

describe('keys and author domain', () => {
  test('bad keys fail naming the key', () => {
    assert.throws(
      () => buildKeyring([{ domain: 'example.org', selector: 's1', privateKey: 'not a key', active: true }]),
      (e: Error) =>
        e instanceof DkimKeyError && /dkim\.keys\[0\] \(s1\._domainkey\.example\.org\)/.test(e.message),
    );
    const weak = generateKeyPairSync('rsa', { modulusLength: 768 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string;
    assert.throws(
      () => buildKeyring([{ domain: 'x.test', selector: 's', privateKey: weak, active: true }]),
      /768 bits/,
    );
    assert.throws(
      () =>
        buildKeyring([
          { domain: 'example.org', selector: 'a', privateKey: rsaPem, active: true },
          { domain: 'example.org', selector: 'b', privateKey: rsaPem, active: true },
        ]),
      /both active rsa keys of example\.org/,
    );
    const r = buildKeyring([
      { domain: 'Example.org', selector: 'old', privateKey: rsaPem, active: false },
      { domain: 'example.org', selector: 'new', privateKey: rsaPem, active: true },
    ]);
    assert.deepEqual(
      r.activeFor('EXAMPLE.ORG').map((k) => k.selector),
      ['new'],
    );
    assert.match(
      dkimTxtRecord(ring.find('example.org', 'e2026')!),
      /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/,
    );
  });

  test('author domain: one From with one domain, else the reason', () => {
    const h = (s: string) => splitMessage(Buffer.from(`${s}\r\n\r\n`)).headers;
    assert.deepEqual(authorDomain(h('From: "A" <a@Example.ORG>')), { ok: true, domain: 'example.org' });
    assert.deepEqual(authorDomain(h('From: a@example.org\r\nFrom: b@example.org')), {
      ok: false,
      reason: 'multiple-from-fields',
    });
    assert.deepEqual(authorDomain(h('From: a@x.test, b@y.test')), {
      ok: false,
      reason: 'multiple-author-domains',
    });
    assert.deepEqual(authorDomain(h('Subject: none')), { ok: false, reason: 'no-from' });
    assert.equal(authorDomain(h('From: nobody')).ok, false);
    assert.deepEqual(authorDomain(h('From: alice@bank.example <bob@evil.example>')), {
      ok: true,
      domain: 'evil.example',
    });
  });
});
