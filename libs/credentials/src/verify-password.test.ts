/**
 * Every stored-hash format, made by the tools directories use (openssl
 * passwd, bcryptjs, slappasswd, node:crypto), verifies the right password and
 * refuses a wrong one; cleartext only by option; unknown schemes refused.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { FIXTURE_FORMATS, makeHash } from './hash-fixtures.ts';
import { md5Crypt } from './md5-crypt.ts';
import { checkPassword, hashFormat, verifyPassword } from './verify-password.ts';

const PASSWORD = 'correct horse ✓ battery';

describe('verifyPassword', () => {
  for (const format of FIXTURE_FORMATS) {
    it(`${format}: right password verifies, wrong one does not`, async () => {
      const stored = await makeHash(format, PASSWORD);
      assert.equal(await verifyPassword(stored, PASSWORD), true, stored);
      assert.equal(await verifyPassword(stored, `${PASSWORD}x`), false);
      assert.equal(await verifyPassword(stored, ''), false);
    });
  }

  it('md5-crypt matches openssl passwd -1 for many salts and lengths', () => {
    for (const pw of ['', 'a', 'secret', 'x'.repeat(16), 'y'.repeat(17), 'päss wörd', 'z'.repeat(70)]) {
      for (const salt of ['abc', 'saltsalt', 'A./9']) {
        const want = execFileSync('openssl', ['passwd', '-1', '-salt', salt, '-stdin'], {
          input: `${pw}\n`,
          encoding: 'utf8',
        }).trim();
        assert.equal(md5Crypt(pw, want), want, `pw=${JSON.stringify(pw)} salt=${salt}`);
      }
    }
  });

  it('$6$ with explicit rounds (openssl -6 with a rounds= salt)', async () => {
    const crypted = execFileSync('openssl', ['passwd', '-6', '-salt', 'rounds=6000$abcdefgh', '-stdin'], {
      input: `${PASSWORD}\n`,
      encoding: 'utf8',
    }).trim();
    assert.match(crypted, /^\$6\$rounds=6000\$/);
    assert.equal(await verifyPassword(`{CRYPT}${crypted}`, PASSWORD), true);
    assert.equal(await verifyPassword(`{crypt}${crypted}`, PASSWORD), true, 'scheme tag is case-insensitive');
    assert.equal(await verifyPassword(`{CRYPT}${crypted}`, 'nope'), false);
  });

  it('cleartext is refused unless allowed', async () => {
    assert.equal(await checkPassword('{PLAIN}secret', 'secret'), 'unknown-scheme');
    assert.equal(await checkPassword('secret', 'secret'), 'unknown-scheme');
    assert.equal(await verifyPassword('{PLAIN}secret', 'secret', { allowCleartext: true }), true);
    assert.equal(await verifyPassword('{CLEARTEXT}secret', 'other', { allowCleartext: true }), false);
  });

  it('unknown schemes and malformed values are refused, not thrown', async () => {
    for (const stored of [
      '{CRYPT}abJnggxhB/yWI', // traditional DES crypt
      '{CRYPT}$7$whatever',
      '{PBKDF2}1000$abc$def',
      '{SSHA}not base64!',
      '{SSHA}AAAA',
      '{ARGON2}$argon2id$v=16$m=4096,t=3,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      '{ARGON2}$argon2id$v=19$m=99999999,t=3,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      // Costs that would stall the service: refused, not computed.
      `{CRYPT}$6$rounds=999999999$abcdefgh$${'A'.repeat(86)}`,
      `{CRYPT}$2y$31$${'A'.repeat(53)}`,
      '',
    ]) {
      assert.equal(await checkPassword(stored, 'secret'), 'unknown-scheme', stored);
    }
  });

  it('names formats for logs and the benchmark', () => {
    assert.equal(hashFormat('{CRYPT}$6$abc$def'), 'CRYPT-6');
    assert.equal(hashFormat('{CRYPT}$2y$10$x'), 'CRYPT-2y');
    assert.equal(hashFormat('{ssha512}abc'), 'SSHA512');
    assert.equal(hashFormat('secret'), 'untagged');
  });
});
