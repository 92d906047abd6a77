/**
 * The author addresses of a message (RFC 5322 §3.6.2 From), read from its
 * header section as received, for the submission's sender rule. Bounded: only
 * the first 64 KiB are read (message-reader keeps that much as the head).
 *
 * Returns the list of addr-specs of every From field, lower-case, or a reason
 * why there is none to check: no From field, or one we cannot read (an
 * unparseable mailbox is not waved through: the caller refuses the message).
 * Display names, comments and quoted strings are dropped before the mailbox
 * list is split on commas (RFC 5322 §3.4); group syntax is not an author.
 */
export type FromResult = { ok: true; addresses: string[] } | { ok: false; why: 'none' | 'unreadable' };

const HEAD_LIMIT = 64 * 1024;
const ADDR_SPEC = /^[^\s@<>()",;:\\[\]]+@[A-Za-z0-9.-]+$/;

/** The header section, unfolded (RFC 5322 §2.2.3), as field lines. */
function headerFields(head: Uint8Array): string[] {
  const text = Buffer.from(head.buffer, head.byteOffset, Math.min(head.byteLength, HEAD_LIMIT)).toString(
    'utf8',
  );
  const end = text.search(/\r?\n\r?\n/);
  const section = end >= 0 ? text.slice(0, end) : text;
  return section.replace(/\r?\n[ \t]/g, ' ').split(/\r?\n/);
}

/** Remove quoted strings and (nested) comments, the places a display name can hide "<" "@" or ",". */
function stripNames(value: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (ch === '\\' && (quoted || depth > 0)) {
      i++;
      continue;
    }
    if (quoted) {
      if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '(') depth++;
    else if (ch === ')' && depth > 0) depth--;
    else if (depth === 0) {
      if (ch === '"') quoted = true;
      else out += ch;
    }
  }
  return out;
}

export function fromAddresses(head: Uint8Array): FromResult {
  const values = headerFields(head)
    .filter((l) => /^from[ \t]*:/i.test(l))
    .map((l) => l.slice(l.indexOf(':') + 1));
  if (values.length === 0) return { ok: false, why: 'none' };
  const addresses: string[] = [];
  for (const value of values) {
    for (const part of stripNames(value).split(',')) {
      const trimmed = part.trim();
      if (trimmed === '') continue;
      const angle = /<([^<>]*)>/.exec(trimmed);
      const spec = (angle ? angle[1]! : trimmed).trim();
      if (!ADDR_SPEC.test(spec)) return { ok: false, why: 'unreadable' };
      addresses.push(spec.toLowerCase());
    }
  }
  return addresses.length > 0 ? { ok: true, addresses } : { ok: false, why: 'unreadable' };
}
