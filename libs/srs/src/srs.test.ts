/**
 * SRS properties over generated addresses (a seeded generator, so a failure
 * names its seed and reproduces): forward then reverse gives the sender back;
 * SRS1 chains through several forwarders unwind hop by hop; any secret in the
 * list verifies while only the first signs; addresses expire after maxAgeDays
 * (across the 1024-day wrap); a changed hash is refused; hash and timestamp
 * are read case-insensitively; an address too long for SRS falls back to the
 * hash-only form and never exceeds 64 octets.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSrsAddress, MAX_LOCAL_PART, Srs, srsTimestamp, srsTimestampAge } from './srs.ts';

/** mulberry32: a small seeded PRNG. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const LOCAL_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.=+-_!#$%&*/?^{|}~';
const LABEL_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';
function pick(r: () => number, chars: string, min: number, max: number): string {
  const n = min + Math.floor(r() * (max - min + 1));
  let s = '';
  for (let i = 0; i < n; i++) s += chars[Math.floor(r() * chars.length)];
  return s;
}
function address(r: () => number): string {
  const labels = 1 + Math.floor(r() * 3);
  const domain = [...Array(labels)].map(() => pick(r, LABEL_CHARS, 1, 10)).join('.');
  return `${pick(r, LOCAL_CHARS, 1, 20)}@${domain}.test`;
}

const DAY = 86_400_000;
const t0 = new Date('2026-11-30T12:00:00Z');
const srs = new Srs({ domain: 'srs.example.org', secrets: ['s3cret-one'] });

describe('SRS0 round trips', () => {
  test('reverse(forward(a)) == a for 2000 generated addresses, any separator', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const r = rng(seed);
      const a = address(r);
      const sep = (['=', '+', '-'] as const)[seed % 3]!;
      const s = new Srs({ domain: 'srs.example.org', secrets: [`k${seed}`], separator: sep });
      const f = s.forward(a, t0);
      assert.equal(f.kind, 'rewritten', `seed ${seed}`);
      const local = f.address.slice(0, f.address.lastIndexOf('@'));
      assert.ok(Buffer.byteLength(local) <= MAX_LOCAL_PART, `seed ${seed}: ${f.address}`);
      if (f.kind === 'rewritten' && f.form === 'SRS0') {
        assert.ok(f.address.startsWith(`SRS0${sep}`), f.address);
        assert.deepEqual(s.reverse(f.address, t0), { ok: true, address: a, form: 'SRS0' }, `seed ${seed}`);
      } else {
        const rev = s.reverse(f.address, t0);
        assert.equal(rev.ok, false);
        assert.equal(!rev.ok && rev.code, 'not-reversible', `seed ${seed}`);
      }
    }
  });

  test('the null sender and addresses of the SRS domain are left alone', () => {
    assert.deepEqual(srs.forward('', t0), { kind: 'unchanged', address: '', reason: 'null-sender' });
    const ours = srs.forward('alice@sender.test', t0).address;
    assert.deepEqual(srs.forward(ours, t0), { kind: 'unchanged', address: ours, reason: 'srs-domain' });
    assert.equal(srs.forward('x@SRS.Example.Org.', t0).kind, 'unchanged');
  });

  test('a sender that is not user@domain is refused', () => {
    for (const bad of ['nobody', '@x.test', 'x@'])
      assert.throws(() => srs.forward(bad, t0), /not user@domain/);
  });
});

describe('SRS1 chains', () => {
  test('three forwarders: each hop keeps the first forwarder, reversal unwinds hop by hop', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const a = address(rng(seed));
      const A = new Srs({ domain: 'a.fwd.test', secrets: ['ka'] });
      const B = new Srs({ domain: 'b.fwd.test', secrets: ['kb'], separator: '+' });
      const C = new Srs({ domain: 'c.fwd.test', secrets: ['kc'], separator: '-' });
      const atA = A.forward(a, t0);
      if (atA.kind !== 'rewritten' || atA.form !== 'SRS0') continue;
      const atB = B.forward(atA.address, t0);
      const atC = C.forward(atB.address, t0);
      if (atB.kind !== 'rewritten' || atB.form !== 'SRS1') continue; // too long: hash-only
      assert.match(atB.address, /^SRS1\+[^=]+=a\.fwd\.test==/);
      if (atC.kind !== 'rewritten' || atC.form !== 'SRS1') continue;
      assert.match(atC.address, /^SRS1-[^=]+=a\.fwd\.test==/, 'C names the first forwarder, not B');
      // A bounce to C goes straight back to A (RFC-less shortcut of libsrs2), then A to the sender.
      const fromC = C.reverse(atC.address, t0);
      assert.deepEqual(fromC, { ok: true, address: atA.address, form: 'SRS1' }, `seed ${seed}`);
      assert.deepEqual(B.reverse(atB.address, t0), { ok: true, address: atA.address, form: 'SRS1' });
      assert.deepEqual(A.reverse(fromC.ok ? fromC.address : '', t0), { ok: true, address: a, form: 'SRS0' });
    }
  });

  test('an SRS1 hash made with another secret is refused', () => {
    const B = new Srs({ domain: 'b.fwd.test', secrets: ['kb'] });
    const forged = new Srs({ domain: 'b.fwd.test', secrets: ['guess'] });
    const viaA = new Srs({ domain: 'a.fwd.test', secrets: ['ka'] }).forward('u@orig.test', t0).address;
    const rev = B.reverse(forged.forward(viaA, t0).address, t0);
    assert.equal(!rev.ok && rev.code, 'bad-hash');
  });
});

describe('secrets, expiry, forgery, case', () => {
  test('rotation: the first secret signs, every listed secret verifies, a dropped one no longer does', () => {
    const old = new Srs({ domain: 'srs.example.org', secrets: ['old'] });
    const rotated = new Srs({ domain: 'srs.example.org', secrets: ['new', 'old'] });
    const dropped = new Srs({ domain: 'srs.example.org', secrets: ['new'] });
    const made = old.forward('alice@sender.test', t0).address;
    assert.deepEqual(rotated.reverse(made, t0), { ok: true, address: 'alice@sender.test', form: 'SRS0' });
    const rev = dropped.reverse(made, t0);
    assert.equal(!rev.ok && rev.code, 'bad-hash');
    const fresh = rotated.forward('alice@sender.test', t0).address;
    assert.equal(dropped.reverse(fresh, t0).ok, true, 'new addresses are signed with the first secret');
    assert.equal(old.reverse(fresh, t0).ok, false);
  });

  test('expiry: valid through maxAgeDays, refused the day after, also across the 1024-day wrap', () => {
    const made = srs.forward('alice@sender.test', t0).address;
    assert.equal(srs.reverse(made, new Date(t0.getTime() + 21 * DAY)).ok, true);
    const late = srs.reverse(made, new Date(t0.getTime() + 22 * DAY));
    assert.deepEqual(late, { ok: false, code: 'expired', reason: 'SRS address expired (22 days old)' });
    const short = new Srs({ domain: 'srs.example.org', secrets: ['s3cret-one'], maxAgeDays: 3 });
    assert.equal(short.reverse(made, new Date(t0.getTime() + 4 * DAY)).ok, false);
    for (let day = 0; day < 1024; day += 7) {
      const at = new Date(Date.UTC(2026, 0, 1) + day * DAY);
      const a = srs.forward('x@y.test', at).address;
      assert.equal(srs.reverse(a, new Date(at.getTime() + 20 * DAY)).ok, true, `day ${day}`);
      assert.equal(srsTimestampAge(srsTimestamp(at), new Date(at.getTime() + 30 * DAY)), 30);
    }
    // A stamp from "tomorrow" is 1023 days old, as in libsrs2.
    assert.equal(srsTimestampAge(srsTimestamp(new Date(t0.getTime() + DAY)), t0), 1023);
  });

  test('forgery: any change to the hash, the sender or the stamp is refused', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const r = rng(seed);
      const a = `${pick(r, LABEL_CHARS, 3, 12)}@${pick(r, LABEL_CHARS, 3, 12)}.test`;
      const made = srs.forward(a, t0).address;
      const [, sep, hash, rest] = /^SRS0(.)([^=]+)=(.*)$/.exec(made)!;
      const h = hash!;
      const i = Math.floor(r() * h.length);
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/';
      let c = h[i]!;
      while (c.toLowerCase() === h[i]!.toLowerCase()) c = alphabet[Math.floor(r() * alphabet.length)]!;
      const forgedHash = `SRS0${sep}${h.slice(0, i)}${c}${h.slice(i + 1)}=${rest}`;
      const rev = srs.reverse(forgedHash, t0);
      assert.equal(!rev.ok && rev.code, 'bad-hash', `seed ${seed}: ${forgedHash}`);
      const forgedUser = made.replace(/=([^=@]+)@/, '=x$1@');
      assert.equal(srs.reverse(forgedUser, t0).ok, false, forgedUser);
    }
    const wrongLength = srs.reverse('SRS0=abc=AB=x.test=u@srs.example.org', t0);
    assert.equal(!wrongLength.ok && wrongLength.code, 'bad-hash');
  });

  test('case folding: hash, stamp, tag and domains in any case verify', () => {
    const made = srs.forward('Alice@Sender.Test', t0).address;
    for (const v of [made.toLowerCase(), made.toUpperCase()]) {
      const rev = srs.reverse(v, t0);
      assert.equal(rev.ok, true, v);
      assert.equal(rev.ok && rev.address.toLowerCase(), 'alice@sender.test');
    }
  });

  test('malformed and foreign addresses are refused with a reason', () => {
    const cases: Array<[string, string]> = [
      ['alice@srs.example.org', 'not-srs'],
      ['SRS0=abcd=AB=x.test=u@other.test', 'wrong-domain'],
      ['SRS0=abcd=AB=x.test@srs.example.org', 'malformed'],
      ['SRS0=abcd=A1=x.test=u@srs.example.org', 'bad-timestamp'],
      ['SRS0==AB=x.test=u@srs.example.org', 'malformed'],
      ['SRS1=abcd=x.test@srs.example.org', 'malformed'],
      ['SRS1=abcd@srs.example.org', 'malformed'],
    ];
    for (const [a, code] of cases) {
      const rev = srs.reverse(a, t0);
      assert.equal(!rev.ok && rev.code, code, a);
      assert.ok(!rev.ok && rev.reason.length > 0);
    }
    assert.equal(isSrsAddress('srs0+x'), true);
    assert.equal(isSrsAddress('srs2=x'), false);
  });

  test('hash-only fallback: a sender too long for SRS gets a signed 64-octet-safe address', () => {
    const long = `${'a'.repeat(60)}@${'b'.repeat(40)}.test`;
    const f = srs.forward(long, t0);
    assert.equal(f.kind === 'rewritten' && f.form, 'hash-only');
    assert.match(f.address, /^SRS0=[^=]{4}=[A-Z2-7]{2}=invalid=[a-z2-7]{16}@srs\.example\.org$/);
    assert.equal(f.address, srs.forward(long, t0).address, 'deterministic');
    const rev = srs.reverse(f.address, t0);
    assert.equal(!rev.ok && rev.code, 'not-reversible');
    const srs1Long = srs.forward(`SRS0=abcd=AB=${'c'.repeat(40)}.test=${'u'.repeat(20)}@f.test`, t0);
    assert.equal(srs1Long.kind === 'rewritten' && srs1Long.form, 'hash-only');
  });

  test('bad options fail at construction', () => {
    assert.throws(() => new Srs({ domain: 'x.test', secrets: [] }), /secret/);
    assert.throws(() => new Srs({ domain: 'x.test', secrets: [''] }), /secret/);
    assert.throws(() => new Srs({ domain: 'bad domain', secrets: ['k'] }), /domain/);
  });
});
