/**
 * DKIM-Signature (RFC 6376 §3.5, §5) over a message as it will leave:
 * relaxed/relaxed, rsa-sha256 or ed25519-sha256 (RFC 8463 §3: Ed25519 signs
 * the SHA-256 of the canonical data), never l= (§8.2), t= always, x= when
 * asked. Written here rather than with mailauth's signer because that signer
 * cannot over-sign: h= lists only fields present, so a From (or Subject, To,
 * ...) added after signing would still verify. We list each of
 * OVERSIGNED once more than it occurs (§5.4.2: a name with no instance left
 * signs the empty string), so adding one breaks the signature.
 *
 * The signature is returned as a header to prepend (the stored body is never
 * rewritten); verified in tests by dkimpy and mailauth.
 */
import { createHash, sign } from 'node:crypto';
import { bodyHash, relaxedHeader } from './canonical.ts';
import type { DkimKey } from './keys.ts';
import type { HeaderField } from './message-headers.ts';

/** Signed when present (docs/dkim.md). */
export const DEFAULT_SIGNED_HEADERS = [
  'From',
  'Reply-To',
  'Subject',
  'Date',
  'To',
  'Cc',
  'Message-ID',
  'In-Reply-To',
  'References',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'Content-Disposition',
  'List-Id',
  'List-Unsubscribe',
  'List-Unsubscribe-Post',
  'Sender',
  'Resent-From',
  'Resent-To',
  'Resent-Date',
] as const;

/** Signed once more than they occur, so none can be added (RFC 6376 §5.4.2, §8.15). */
export const OVERSIGNED = ['From', 'To', 'Cc', 'Subject', 'Date', 'Reply-To'] as const;

export interface SignOptions {
  /** Field names to sign (default DEFAULT_SIGNED_HEADERS); From is always included. */
  headers?: readonly string[];
  now?: Date;
  /** x= this many seconds after t=; omitted when 0 or undefined. */
  expiresInSeconds?: number;
}

/** Fold a tag list at "; " and ":" boundaries so no line exceeds ~76 characters (RFC 5322 §2.1.1). */
function foldTags(tags: string[]): string {
  let out = '';
  let line = 'DKIM-Signature:'.length;
  for (const [i, tag] of tags.entries()) {
    const piece = i === 0 ? ` ${tag}` : ` ${tag}`;
    const sep = i === 0 ? '' : ';';
    if (line + sep.length + piece.length > 76 && i > 0) {
      out += `${sep}\r\n${piece}`;
      line = piece.length;
    } else {
      out += `${sep}${piece}`;
      line += sep.length + piece.length;
    }
  }
  return out;
}

/** Choose the instances h= names, bottom-up per name (§5.4.2); returns h= and the canonical lines. */
export function selectHeaders(
  headers: readonly HeaderField[],
  names: readonly string[],
): {
  h: string[];
  canonical: string[];
} {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  wanted.add('from');
  const over = new Set(OVERSIGNED.map((n) => n.toLowerCase()));
  const h: string[] = [];
  const canonical: string[] = [];
  const counts = new Map<string, number>();
  for (const f of headers) {
    const n = f.name.toLowerCase();
    if (wanted.has(n)) counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  const order = [...wanted].filter((n) => counts.has(n) || over.has(n));
  for (const n of order) {
    const instances = headers.filter((f) => f.name.toLowerCase() === n);
    // Bottom-up: the last instance first (§5.4.2).
    for (let i = instances.length - 1; i >= 0; i--) {
      h.push(n);
      canonical.push(relaxedHeader(instances[i]!));
    }
    if (over.has(n) && wanted.has(n)) h.push(n);
  }
  return { h, canonical };
}

type SigningKey = Pick<DkimKey, 'domain' | 'selector' | 'type' | 'key'>;

/** What is signed: the tag list with b= empty, and the bytes RFC 6376 §3.7 hashes. */
function signingInput(
  headers: readonly HeaderField[],
  body: Uint8Array | { bodyHash: string },
  key: SigningKey,
  opts: SignOptions,
): { unsigned: string; bytes: Buffer } {
  const now = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const { h, canonical } = selectHeaders(headers, opts.headers ?? DEFAULT_SIGNED_HEADERS);
  const algorithm = key.type === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256';
  const tags = [
    'v=1',
    `a=${algorithm}`,
    'c=relaxed/relaxed',
    `d=${key.domain}`,
    `s=${key.selector}`,
    `t=${now}`,
    ...(opts.expiresInSeconds ? [`x=${now + opts.expiresInSeconds}`] : []),
    `h=${h.join(':')}`,
    `bh=${body instanceof Uint8Array ? bodyHash(body) : body.bodyHash}`,
    'b=',
  ];
  const unsigned = foldTags(tags);
  // §3.7: the signature's own field, b= empty, canonicalized, without the final CRLF.
  const data = `${canonical.map((c) => `${c}\r\n`).join('')}${relaxedHeader({ name: 'DKIM-Signature', raw: `DKIM-Signature:${unsigned}` })}`;
  return { unsigned, bytes: Buffer.from(data, 'utf8') };
}

/** The field value: the tags, then b= folded in 64-character pieces (whitespace in b= is ignored, §3.5). */
function withSignature(unsigned: string, signature: Buffer): string {
  const b = signature.toString('base64');
  const pieces = b.match(/.{1,64}/g) ?? [b];
  return `${unsigned}${pieces.join('\r\n ')}`.trimStart();
}

/**
 * One DKIM-Signature value (without "DKIM-Signature:") for `key` over
 * headers+body. The body may be given as its relaxed body hash instead
 * (`{ bodyHash }`, streaming-body-hash.ts) when it is too large to hold.
 */
export function dkimSignature(
  headers: readonly HeaderField[],
  body: Uint8Array | { bodyHash: string },
  key: SigningKey,
  opts: SignOptions = {},
): string {
  const { unsigned, bytes } = signingInput(headers, body, key, opts);
  const signature =
    key.type === 'rsa'
      ? sign('sha256', bytes, key.key)
      : sign(null, createHash('sha256').update(bytes).digest(), key.key);
  return withSignature(unsigned, signature);
}

/**
 * The same signature, computed on libuv's thread pool (node:crypto's sign with a callback):
 * an RSA-2048 signature is about 1.5 ms of CPU that the event loop then does not spend, so a
 * process signing every forward keeps taking mail while it signs.
 */
export async function dkimSignatureOffThread(
  headers: readonly HeaderField[],
  body: Uint8Array | { bodyHash: string },
  key: SigningKey,
  opts: SignOptions = {},
): Promise<string> {
  const { unsigned, bytes } = signingInput(headers, body, key, opts);
  const signature = await new Promise<Buffer>((resolve, reject) => {
    const done = (err: Error | null, sig: Buffer) => (err ? reject(err) : resolve(sig));
    if (key.type === 'rsa') sign('sha256', bytes, key.key, done);
    else sign(null, createHash('sha256').update(bytes).digest(), key.key, done);
  });
  return withSignature(unsigned, signature);
}
