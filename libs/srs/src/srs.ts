/**
 * The Sender Rewriting Scheme as libsrs2 defines it and postsrsd (1.x, the
 * Debian package) implements it, so that an address made here is reversed by
 * postsrsd with the same secret and the other way round.
 *
 * Why: a forwarded message keeps its original envelope sender, so the next
 * hop checks the original domain's SPF (RFC 7208 §2.4 MAIL FROM identity)
 * against our IP and fails it. SRS replaces the sender with an address of
 * ours that carries the original one, signed, so SPF is checked against our
 * domain and a bounce comes back to us, which sends it on.
 *
 * Forms (SRSSEP is always "="; the separator after the tag is configurable,
 * "=", "+" or "-", default "="):
 *   SRS0<sep>HHHH=TT=orig-domain=orig-local@srs-domain      first hop
 *   SRS1<sep>HHHH=first-forwarder=<sep0>HHHH=TT=orig-domain=orig-local@srs-domain
 * where TT is the day number modulo 1024 in two base32 characters, HHHH the
 * first `hashLength` characters of base64(HMAC-SHA1(secret, lower(fields)))
 * over, for SRS0, the timestamp, domain and local part, and for SRS1, the
 * first forwarder's domain and the rest of its SRS0 local part. Hashes are
 * compared case-insensitively (an MTA may fold the case of a local part);
 * every secret in the list verifies, the first one signs (rotation).
 *
 * When the rewritten local part would exceed 64 octets (RFC 5321
 * §4.5.3.1.1), we do not emit an invalid address: we emit the hash-only form
 * SRS0<sep>HHHH=TT=invalid=<digest>, a valid, signed, dated address whose
 * "domain" is the reserved TLD "invalid" (RFC 2606 §2) and whose local part
 * is a keyed digest of the sender. SPF at the next hop passes as for any SRS
 * address; a bounce to it is refused (`not-reversible`), because the
 * original sender is not in it. See docs/srs.md. The length counted is that
 * of the local part as written (quoted if it must be: address-form.ts).
 */
import { createHmac } from 'node:crypto';
import { externalLocalPart } from './address-form.ts';

/** The separators libsrs2 accepts after the SRS0/SRS1 tag. */
export type SrsSeparator = '=' | '+' | '-';
const SEPARATORS = '=+-';
/** The separator between fields (libsrs2 SRSSEP), fixed. */
const SRSSEP = '=';
const TIME_BASECHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const TIME_PRECISION = 24 * 60 * 60;
const TIME_SLOTS = 1024;
/** RFC 5321 §4.5.3.1.1: the maximum length of a local part. */
export const MAX_LOCAL_PART = 64;
/** The domain of the hash-only fallback form: a reserved TLD, never deliverable (RFC 2606 §2). */
export const HASH_ONLY_HOST = 'invalid';

export interface SrsOptions {
  /** The domain SRS addresses are made in (ours, listed in our SPF; e.g. srs.example.org). */
  domain: string;
  /** HMAC secrets: the first signs, all verify. At least one; use >= 16 random bytes. */
  secrets: readonly string[];
  /** Oldest timestamp accepted, in days (postsrsd: 21). */
  maxAgeDays?: number;
  /** Hash characters written (postsrsd -n, default 4). */
  hashLength?: number;
  /** Fewest hash characters accepted (postsrsd -N, default 4). */
  hashMin?: number;
  /** The character after SRS0/SRS1 (postsrsd -a, default "="). */
  separator?: SrsSeparator;
}

export type ForwardResult =
  | { kind: 'rewritten'; address: string; form: 'SRS0' | 'SRS1' | 'hash-only' }
  /** Nothing to do: the null sender, or already an address of the SRS domain. */
  | { kind: 'unchanged'; address: string; reason: 'null-sender' | 'srs-domain' };

export type SrsErrorCode =
  | 'not-srs'
  | 'wrong-domain'
  | 'malformed'
  | 'bad-hash'
  | 'bad-timestamp'
  | 'expired'
  | 'not-reversible';

export type ReverseResult =
  | { ok: true; address: string; form: 'SRS0' | 'SRS1' }
  | { ok: false; code: SrsErrorCode; reason: string };

/** Raised by forward() for a sender that is not user@domain. */
export class SrsError extends Error {
  override name = 'SrsError';
  readonly code: SrsErrorCode;
  constructor(code: SrsErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** ASCII-only lower case, as C tolower() in the "C" locale (libsrs2 hashes lower-cased bytes). */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** Is this local part (or address) an SRS0/SRS1 address (libsrs2 SRS_IS_SRS_ADDRESS)? */
export function isSrsAddress(address: string): boolean {
  return /^srs[01][=+-]/i.test(address);
}

/** The day-number timestamp, two base32 characters (libsrs2 srs_timestamp_create). */
export function srsTimestamp(now: Date): string {
  const day = Math.floor(now.getTime() / 1000 / TIME_PRECISION);
  return TIME_BASECHARS[(day >> 5) & 31]! + TIME_BASECHARS[day & 31]!;
}

/** Days since the timestamp was made, or null if it is not two base32 characters. */
export function srsTimestampAge(stamp: string, now: Date): number | null {
  if (stamp.length !== 2) return null;
  let then = 0;
  for (const ch of stamp.toUpperCase()) {
    const off = TIME_BASECHARS.indexOf(ch);
    if (off < 0) return null;
    then = (then << 5) | off;
  }
  let today = Math.floor(now.getTime() / 1000 / TIME_PRECISION) % TIME_SLOTS;
  // libsrs2 srs_timestamp_check: a stamp "from the future" is ~1024 days old.
  while (today < then) today += TIME_SLOTS;
  return today - then;
}

export class Srs {
  readonly domain: string;
  readonly maxAgeDays: number;
  readonly hashLength: number;
  readonly hashMin: number;
  readonly separator: SrsSeparator;
  readonly #secrets: readonly string[];

  constructor(opts: SrsOptions) {
    if (opts.secrets.length === 0 || opts.secrets.some((s) => s.length === 0)) {
      throw new Error('srs: at least one non-empty secret is required');
    }
    if (!/^[a-z0-9.-]+$/i.test(opts.domain)) throw new Error(`srs: invalid SRS domain "${opts.domain}"`);
    this.domain = asciiLower(opts.domain).replace(/\.$/, '');
    this.#secrets = [...opts.secrets];
    this.maxAgeDays = opts.maxAgeDays ?? 21;
    this.hashLength = opts.hashLength ?? 4;
    this.hashMin = opts.hashMin ?? this.hashLength;
    this.separator = opts.separator ?? '=';
    if (!SEPARATORS.includes(this.separator)) throw new Error('srs: separator must be one of = + -');
    if (this.hashLength < 1 || this.hashLength > 27) throw new Error('srs: hashLength must be 1..27');
    if (this.hashMin < 1 || this.hashMin > this.hashLength)
      throw new Error('srs: hashMin must be 1..hashLength');
  }

  /** libsrs2 srs_hash_create: base64(HMAC-SHA1(secret, lower(concat(fields)))), first hashLength chars. */
  #hash(secret: string, fields: readonly string[]): string {
    const mac = createHmac('sha1', Buffer.from(secret, 'utf8'));
    for (const f of fields) mac.update(Buffer.from(asciiLower(f), 'utf8'));
    return mac.digest('base64').slice(0, this.hashLength);
  }

  /** libsrs2 srs_hash_check: any secret, case-insensitive. */
  #hashValid(hash: string, fields: readonly string[]): boolean {
    if (hash.length < this.hashMin || hash.length > this.hashLength) return false;
    const given = hash.toLowerCase();
    return this.#secrets.some((s) => this.#hash(s, fields).slice(0, hash.length).toLowerCase() === given);
  }

  /**
   * The SRS form of an envelope sender (libsrs2 srs_forward): SRS0 for a plain
   * address, SRS1 for another forwarder's SRS0/SRS1 address. The caller
   * decides whether to rewrite at all (external forward, foreign sender).
   */
  forward(sender: string, now: Date = new Date()): ForwardResult {
    if (sender === '') return { kind: 'unchanged', address: sender, reason: 'null-sender' };
    const at = sender.lastIndexOf('@');
    if (at <= 0 || at === sender.length - 1) {
      throw new SrsError('malformed', `sender "${sender}" is not user@domain`);
    }
    const user = sender.slice(0, at);
    const host = sender.slice(at + 1);
    if (asciiLower(host).replace(/\.$/, '') === this.domain) {
      return { kind: 'unchanged', address: sender, reason: 'srs-domain' };
    }
    const sep = this.separator;
    const secret = this.#secrets[0]!;
    let local: string;
    let form: 'SRS0' | 'SRS1';
    const srs1 = /^srs1([=+-])(.*)$/is.exec(user);
    const srs0 = /^srs0[=+-]/i.test(user);
    if (srs1) {
      // srs_compile_guarded, SRS1 input: keep the first forwarder and its SRS0 part, re-sign.
      const rest = srs1[2]!;
      const h = rest.indexOf(SRSSEP);
      const srsHost = h >= 0 ? rest.slice(h + 1) : '';
      const u = srsHost.indexOf(SRSSEP);
      if (h < 0 || u <= 0 || u === srsHost.length - 1) {
        throw new SrsError('malformed', `sender "${sender}" is a malformed SRS1 address`);
      }
      const firstHost = srsHost.slice(0, u);
      const srsUser = srsHost.slice(u + 1);
      local = `SRS1${sep}${this.#hash(secret, [firstHost, srsUser])}${SRSSEP}${firstHost}${SRSSEP}${srsUser}`;
      form = 'SRS1';
    } else if (srs0) {
      // srs_compile_guarded, SRS0 input: the forwarder's domain and its SRS0 local part minus "SRS0".
      const srsUser = user.slice(4);
      local = `SRS1${sep}${this.#hash(secret, [host, srsUser])}${SRSSEP}${host}${SRSSEP}${srsUser}`;
      form = 'SRS1';
    } else {
      // srs_compile_shortcut.
      const stamp = srsTimestamp(now);
      const hash = this.#hash(secret, [stamp, host, user]);
      local = `SRS0${sep}${hash}${SRSSEP}${stamp}${SRSSEP}${host}${SRSSEP}${user}`;
      form = 'SRS0';
    }
    if (Buffer.byteLength(externalLocalPart(local), 'utf8') > MAX_LOCAL_PART) {
      return { kind: 'rewritten', address: this.hashOnly(sender, now), form: 'hash-only' };
    }
    return { kind: 'rewritten', address: `${local}@${this.domain}`, form };
  }

  /** The fallback for senders too long to carry (see the header comment). */
  hashOnly(sender: string, now: Date = new Date()): string {
    const digest = createHmac('sha1', Buffer.from(this.#secrets[0]!, 'utf8'))
      .update(Buffer.from(`hash-only:${asciiLower(sender)}`, 'utf8'))
      .digest();
    const user = base32(digest).slice(0, 16).toLowerCase();
    const stamp = srsTimestamp(now);
    const hash = this.#hash(this.#secrets[0]!, [stamp, HASH_ONLY_HOST, user]);
    return `SRS0${this.separator}${hash}${SRSSEP}${stamp}${SRSSEP}${HASH_ONLY_HOST}${SRSSEP}${user}@${this.domain}`;
  }

  /**
   * The address an SRS address of ours stands for (libsrs2 srs_reverse): the
   * original sender for SRS0, the first forwarder's SRS0 address for SRS1.
   * Refuses, with a reason safe to show an SMTP client, what is not ours,
   * malformed, forged (hash), or older than maxAgeDays.
   */
  reverse(address: string, now: Date = new Date()): ReverseResult {
    const at = address.lastIndexOf('@');
    const user = at >= 0 ? address.slice(0, at) : address;
    const host = at >= 0 ? asciiLower(address.slice(at + 1)).replace(/\.$/, '') : this.domain;
    if (!isSrsAddress(user)) return fail('not-srs', 'not an SRS address');
    if (host !== this.domain)
      return fail('wrong-domain', `SRS address outside the SRS domain ${this.domain}`);
    const body = user.slice(5);
    if (/^srs1/i.test(user)) {
      const h = body.indexOf(SRSSEP);
      const rest = h >= 0 ? body.slice(h + 1) : '';
      const u = rest.indexOf(SRSSEP);
      if (h <= 0 || u <= 0 || u === rest.length - 1) return fail('malformed', 'malformed SRS1 address');
      const hash = body.slice(0, h);
      const firstHost = rest.slice(0, u);
      const srsUser = rest.slice(u + 1);
      if (!this.#hashValid(hash, [firstHost, srsUser])) return fail('bad-hash', 'SRS hash does not verify');
      return { ok: true, address: `SRS0${srsUser}@${firstHost}`, form: 'SRS1' };
    }
    const parts = body.split(SRSSEP);
    if (parts.length < 4) return fail('malformed', 'malformed SRS0 address');
    const [hash, stamp, origHost] = parts as [string, string, string];
    const origUser = parts.slice(3).join(SRSSEP);
    if (hash === '' || origHost === '' || origUser === '') return fail('malformed', 'malformed SRS0 address');
    const age = srsTimestampAge(stamp, now);
    if (age === null) return fail('bad-timestamp', 'SRS timestamp is invalid');
    if (!this.#hashValid(hash, [stamp, origHost, origUser]))
      return fail('bad-hash', 'SRS hash does not verify');
    if (age > this.maxAgeDays) return fail('expired', `SRS address expired (${age} days old)`);
    if (asciiLower(origHost) === HASH_ONLY_HOST) {
      return fail('not-reversible', 'SRS address is hash-only: the original sender is not recoverable');
    }
    return { ok: true, address: `${origUser}@${origHost}`, form: 'SRS0' };
  }
}

function fail(code: SrsErrorCode, reason: string): ReverseResult {
  return { ok: false, code, reason };
}

/** RFC 4648 §6 base32 without padding. */
function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += TIME_BASECHARS[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += TIME_BASECHARS[(value << (5 - bits)) & 31];
  return out;
}

/** Parse a postsrsd secrets file: one secret per line, the first signs; blank lines ignored. */
export function parseSecretsFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}
