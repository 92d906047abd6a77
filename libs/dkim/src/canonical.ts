/**
 * DKIM "relaxed" canonicalization (RFC 6376 §3.4.2 headers, §3.4.4 body),
 * the only one we sign with: it survives the whitespace changes forwarders
 * and MTAs make. The body hash (bh=) is SHA-256 over the whole canonical
 * body: we never write l= (RFC 6376 §8.2, RELIABILITY-NOTES §2).
 */
import { createHash } from 'node:crypto';
import type { HeaderField } from './message-headers.ts';

/** §3.4.2: lower-case name, unfold, runs of WSP to one SP, no WSP at the ends or around the colon. */
export function relaxedHeader(field: HeaderField): string {
  const colon = field.raw.indexOf(':');
  const name = field.raw.slice(0, colon).trim().toLowerCase();
  const value = field.raw
    .slice(colon + 1)
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim();
  return `${name}:${value}`;
}

/** §3.4.4: WSP runs to one SP, no WSP at line ends, no empty lines at the end; CRLF-terminated unless empty. */
export function relaxedBody(body: Uint8Array): Buffer {
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1');
  const lines = text.split('\r\n').map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return Buffer.from(lines.length === 0 ? '' : `${lines.join('\r\n')}\r\n`, 'latin1');
}

export function bodyHash(body: Uint8Array): string {
  return createHash('sha256').update(relaxedBody(body)).digest('base64');
}
