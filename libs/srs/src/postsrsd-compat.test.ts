/**
 * Compatibility with Debian's postsrsd (libsrs2), the independent judge: with
 * the same secrets and domain, what postsrsd makes we reverse, what we make
 * postsrsd reverses, and for SRS0 and SRS1 both make the same address (same
 * day). Secrets rotate the same way in both. Needs /usr/sbin/postsrsd
 * (`apt-get install postsrsd`, in scripts/setup.sh).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { POSTSRSD_BIN, type Postsrsd, startPostsrsd } from '@sluice/test-harness';
import { Srs } from './srs.ts';

const domain = 'srs.example.org';
const secrets = ['f1rst-secret-0123456789', 'older-secret-abcdef'];
const senders = [
  'alice@sender.test',
  'Bob.Smith+tag@Mixed.Case.Example',
  'x=y@eq.test',
  'first.last-1@sub.domain.test',
  'SRS0=abcd=AB=orig.test=user@first-forwarder.test',
  'SRS0+AbCd=ZZ=orig.test=u=v@ff.test',
  'SRS1=wxyz=first.test==abcd=AB=orig.test=user@second.test',
];

describe('postsrsd compatibility', {
  skip: !existsSync(POSTSRSD_BIN) && `${POSTSRSD_BIN} not installed`,
}, () => {
  let postsrsd: Postsrsd;
  let oldOnly: Postsrsd;
  const ours = new Srs({ domain, secrets });

  before(async () => {
    postsrsd = await startPostsrsd({ domain, secrets });
    oldOnly = await startPostsrsd({ domain, secrets: [secrets[1]!] });
  });
  after(async () => {
    await postsrsd?.stop();
    await oldOnly?.stop();
  });

  test('both make the same SRS0/SRS1 address for the same sender on the same day', async () => {
    for (const s of senders) {
      const theirs = await postsrsd.forward(s);
      assert.equal(theirs.code, 200, `${s}: ${theirs.text}`);
      const mine = ours.forward(s);
      assert.equal(mine.address, theirs.text, s);
    }
  });

  test('we reverse what postsrsd made, and postsrsd reverses what we made', async () => {
    for (const s of senders) {
      const theirs = (await postsrsd.forward(s)).text;
      const rev = ours.reverse(theirs);
      assert.ok(rev.ok, `${theirs}: ${!rev.ok && rev.reason}`);
      const back = await postsrsd.reverse(ours.forward(s).address);
      assert.equal(back.code, 200, back.text);
      assert.equal(back.text, rev.address, s);
    }
  });

  test('reversal folds case on both sides', async () => {
    const made = ours.forward('alice@sender.test').address;
    for (const v of [made.toLowerCase(), made.toUpperCase()]) {
      const back = await postsrsd.reverse(v);
      assert.equal(back.code, 200, `${v}: ${back.text}`);
      assert.equal(back.text.toLowerCase(), 'alice@sender.test');
      assert.equal(ours.reverse(v).ok, true);
    }
  });

  test('rotation: an address signed with the old secret by postsrsd still reverses here', async () => {
    const signedOld = (await oldOnly.forward('carol@sender.test')).text;
    assert.notEqual(signedOld, ours.forward('carol@sender.test').address, 'signed with another secret');
    assert.deepEqual(ours.reverse(signedOld), { ok: true, address: 'carol@sender.test', form: 'SRS0' });
    const newOnly = new Srs({ domain, secrets: [secrets[0]!] });
    assert.equal(newOnly.reverse(signedOld).ok, false);
  });

  test('both refuse a forged hash', async () => {
    const made = ours.forward('dave@sender.test').address;
    const forged = made.replace(/^SRS0=(.)/, (_m, c: string) => `SRS0=${c === 'A' || c === 'a' ? 'B' : 'A'}`);
    assert.equal((await postsrsd.reverse(forged)).code, 500);
    assert.equal(ours.reverse(forged).ok, false);
  });
});
