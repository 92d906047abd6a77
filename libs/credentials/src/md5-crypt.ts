/**
 * md5-crypt ("$1$"), Poul-Henning Kamp's FreeBSD crypt(3) scheme, which old
 * directories still hold as {CRYPT}$1$salt$digest. Hand-written because no
 * well-kept npm package implements it (decision 0028): the algorithm is short,
 * uses node:crypto's MD5, and the tests check it against `openssl passwd -1`.
 *
 * Algorithm (FreeBSD lib/libcrypt/crypt-md5.c): salt is at most 8 characters
 * up to the next '$'; an alternate digest md5(pw salt pw) is mixed into the
 * first context, then 1000 rounds re-hash the result with pw and salt in a
 * fixed pattern; the 16 digest bytes are written in crypt's base-64 alphabet
 * in a fixed byte order.
 */
import { createHash } from 'node:crypto';

const MAGIC = '$1$';
const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function md5(...parts: Buffer[]): Buffer {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `n` characters of crypt's base 64 for the low bits of `v`, least significant first. */
function to64(v: number, n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) {
    out += ITOA64[v & 0x3f];
    v >>>= 6;
  }
  return out;
}

/** The salt of a $1$ string: up to 8 characters before the next '$'. */
export function md5CryptSalt(setting: string): string {
  const rest = setting.startsWith(MAGIC) ? setting.slice(MAGIC.length) : setting;
  const end = rest.indexOf('$');
  return (end === -1 ? rest : rest.slice(0, end)).slice(0, 8);
}

/** The full "$1$salt$digest" string of `password` with the salt of `setting`. */
export function md5Crypt(password: string, setting: string): string {
  const pw = Buffer.from(password, 'utf8');
  const saltText = md5CryptSalt(setting);
  const salt = Buffer.from(saltText, 'utf8');
  const magic = Buffer.from(MAGIC);

  const alternate = md5(pw, salt, pw);
  const parts: Buffer[] = [pw, magic, salt];
  for (let left = pw.length; left > 0; left -= 16) parts.push(alternate.subarray(0, Math.min(left, 16)));
  // One byte per bit of the length: NUL for a set bit, the first password byte for a clear one.
  for (let i = pw.length; i > 0; i >>>= 1) parts.push(i & 1 ? Buffer.alloc(1) : pw.subarray(0, 1));
  let f = md5(...parts);

  for (let i = 0; i < 1000; i++) {
    const round: Buffer[] = [i & 1 ? pw : f];
    if (i % 3) round.push(salt);
    if (i % 7) round.push(pw);
    round.push(i & 1 ? f : pw);
    f = md5(...round);
  }

  const b = (i: number) => f[i]!;
  const digest =
    to64((b(0) << 16) | (b(6) << 8) | b(12), 4) +
    to64((b(1) << 16) | (b(7) << 8) | b(13), 4) +
    to64((b(2) << 16) | (b(8) << 8) | b(14), 4) +
    to64((b(3) << 16) | (b(9) << 8) | b(15), 4) +
    to64((b(4) << 16) | (b(10) << 8) | b(5), 4) +
    to64(b(11), 2);
  return `${MAGIC}${saltText}$${digest}`;
}
