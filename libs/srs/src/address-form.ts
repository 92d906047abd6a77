/**
 * SRS works on the internal (unquoted) form of an address, as Postfix hands
 * it to postsrsd: `"john doe"@x.test` is rewritten as `john doe@x.test`, and
 * the result is written back with quotes where RFC 5321 §4.1.2 needs them
 * (a local part that is not a Dot-string). Envelopes carry the external
 * (canonical, quoted-where-needed) form, so the rewriter and the resolver
 * convert on the way in and out; without this, a quoted sender would give an
 * SRS address with a quote in the middle of its local part.
 */

/** RFC 5321 §4.1.2 atext (RFC 5322 §3.2.3), plus UTF-8 (RFC 6531 §3.3). */
const ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+$/;

function splitAt(address: string): [string, string] | null {
  const at = address.lastIndexOf('@');
  if (at <= 0) return null;
  return [address.slice(0, at), address.slice(at + 1)];
}

/** `"john doe"@x` -> `john doe@x`; other addresses unchanged. */
export function toInternalForm(address: string): string {
  const parts = splitAt(address);
  if (!parts) return address;
  const [local, domain] = parts;
  if (local.length >= 2 && local.startsWith('"') && local.endsWith('"')) {
    return `${local.slice(1, -1).replace(/\\(.)/g, '$1')}@${domain}`;
  }
  return address;
}

/** The local part as written in an envelope: a Dot-string when it is one, else quoted. */
export function externalLocalPart(local: string): string {
  if (local.split('.').every((a) => a.length > 0 && ATOM.test(a))) return local;
  return `"${local.replace(/(["\\])/g, '\\$1')}"`;
}

/** `john doe@x` -> `"john doe"@x`; Dot-string local parts unchanged. */
export function toExternalForm(address: string): string {
  const parts = splitAt(address);
  if (!parts) return address;
  return `${externalLocalPart(parts[0])}@${parts[1]}`;
}
