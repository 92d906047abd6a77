/**
 * `sluice srs` and `sluice dkim keygen`: forward/reverse with a postsrsd-style
 * secrets file (the reverse of what forward printed is the sender; a forged
 * address exits 1 with the reason), usage errors exit 2, and keygen writes a
 * private key (0600, never overwritten) whose printed DNS record verifies a
 * signature made with it (mailauth as judge).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildKeyring, dkimSignature, splitMessage } from '@sluice/dkim';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { runDkimCommand } from './dkim-command.ts';
import { runSrsCommand } from './srs-command.ts';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));

describe('sluice srs', () => {
  const secretFile = join(dir, 'srs-secrets');
  writeFileSync(secretFile, 'new-secret\nold-secret\n');
  const opts = ['--domain', 'srs.example.org', '--secret-file', secretFile];

  test('forward then reverse gives the sender back', async () => {
    const f = capture();
    assert.equal(await runSrsCommand(['forward', 'alice@sender.test', ...opts], f.io), 0);
    assert.match(f.out[0]!, /^SRS0=.{4}=..=sender\.test=alice@srs\.example\.org$/);
    const r = capture();
    assert.equal(await runSrsCommand(['reverse', f.out[0]!, ...opts], r.io), 0);
    assert.deepEqual(r.out, ['alice@sender.test']);
  });

  test('a forged address exits 1 with the reason; bad usage exits 2', async () => {
    const r = capture();
    assert.equal(await runSrsCommand(['reverse', 'SRS0=abcd=AB=x.test=u@srs.example.org', ...opts], r.io), 1);
    assert.match(r.err[0]!, /SRS hash does not verify/);
    assert.equal(await runSrsCommand(['sideways', 'a@b.test', ...opts], capture().io), 2);
    assert.equal(await runSrsCommand(['forward', 'a@b.test', '--domain', 'x.test'], capture().io), 2);
  });
});

describe('sluice dkim keygen', () => {
  test('writes a 0600 key whose printed record verifies its signatures; never overwrites', async () => {
    const out = join(dir, 'k1.private');
    const c = capture();
    assert.equal(
      await runDkimCommand(['keygen', '--domain', 'example.org', '--selector', 'k1', '--out', out], c.io),
      0,
    );
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const record = [...c.out[0]!.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
    assert.match(record, /^v=DKIM1; k=rsa; p=/);
    assert.match(c.out[0]!, /^k1\._domainkey\tIN\tTXT\t\( "/);

    const ring = buildKeyring([
      { domain: 'example.org', selector: 'k1', privateKey: readFileSync(out, 'utf8'), active: true },
    ]);
    assert.equal(ring.keys[0]!.bits, 2048);
    const msg = Buffer.from('From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n');
    const { headers, body } = splitMessage(msg);
    const signed = Buffer.concat([
      Buffer.from(`DKIM-Signature: ${dkimSignature(headers, body, ring.keys[0]!)}\r\n`),
      msg,
    ]);
    const resolver = async (name: string) => {
      if (name !== 'k1._domainkey.example.org') throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
      return [record.match(/.{1,255}/g)!];
    };
    const v = await dkimVerify(signed, { resolver });
    assert.equal(v.results[0]?.status.result, 'pass');

    const again = capture();
    assert.equal(
      await runDkimCommand(['keygen', '--domain', 'example.org', '--selector', 'k1', '--out', out], again.io),
      1,
    );
    assert.match(again.err[0]!, /exists — not overwritten/);
    assert.equal(await runDkimCommand(['keygen', '--domain', 'example.org'], capture().io), 2);
  });
});

describe('sluice dkim rotate', () => {
  test('makes the next key and prints generate, publish, wait, activate, retire with its record', async () => {
    const out = join(dir, '2027a.private');
    const c = capture();
    assert.equal(
      await runDkimCommand(
        [
          'rotate',
          '--domain',
          'example.org',
          '--selector',
          '2027a',
          '--old',
          '2026a',
          '--type',
          'ed25519',
          '--ttl',
          '7200',
          '--out',
          out,
        ],
        c.io,
      ),
      0,
    );
    const text = c.out.join('\n');
    const steps = c.out.filter((l) => /^\d\. /.test(l)).map((l) => l.slice(3).split(/[: ]/)[0]);
    assert.deepEqual(steps, ['generate', 'publish', 'wait', 'activate', 'retire']);
    assert.match(text, /2026a -> 2027a/);
    assert.match(text, /publish this record at 2027a\._domainkey\.example\.org \(TTL 7200\)/);
    assert.match(text, /at least its TTL \(2 h\)/);
    assert.match(text, /set 2026a to active: false/);
    assert.match(text, /2026a\._domainkey\.example\.org as "v=DKIM1; p=" \(revoked/);
    // The printed record is the new key's: it verifies a signature made with the written key.
    const record = [...text.matchAll(/"(v=DKIM1; k=ed25519[^"]*)"/g)].map((m) => m[1]).join('');
    const ring = buildKeyring([
      { domain: 'example.org', selector: '2027a', privateKey: readFileSync(out, 'utf8'), active: true },
    ]);
    const msg = Buffer.from('From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n');
    const { headers, body } = splitMessage(msg);
    const signed = Buffer.concat([
      Buffer.from(`DKIM-Signature: ${dkimSignature(headers, body, ring.keys[0]!)}\r\n`),
      msg,
    ]);
    const v = await dkimVerify(signed, {
      resolver: async (name: string) => {
        if (name !== '2027a._domainkey.example.org')
          throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
        return [[record]];
      },
    });
    assert.equal(v.results[0]?.status.result, 'pass');
  });

  test('refuses the old selector as the new one and a bad TTL', async () => {
    const base = [
      'rotate',
      '--domain',
      'example.org',
      '--selector',
      's1',
      '--out',
      join(dir, 'never.private'),
    ];
    const same = capture();
    assert.equal(await runDkimCommand([...base, '--old', 's1'], same.io), 2);
    assert.match(same.err[0]!, /--old must name the selector in use now/);
    assert.equal(await runDkimCommand([...base, '--ttl', 'soon'], capture().io), 2);
  });
});
