/**
 * The header block of a message as received, split into fields (RFC 5322
 * §2.2: a field is its first line plus the folded lines after it; the block
 * ends at the first empty line, §2.1). Read-only: the rules look at it, and
 * removals are expressed as (name, index) instructions for the egress.
 */
export interface HeaderFieldView {
  /** Lower-case field name. */
  name: string;
  /** The value unfolded (CRLF + WSP -> WSP), without the leading space. */
  value: string;
  /** 0-based occurrence of this name, top down (what a HeaderRemoval's index counts). */
  index: number;
}

/** Offset of the empty line that ends the header block (or the body length). */
export function headerBlockLength(body: Uint8Array): number {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (buf[0] === 0x0d && buf[1] === 0x0a) return 0;
  const i = buf.indexOf('\r\n\r\n');
  return i < 0 ? buf.length : i + 2;
}

export function headerFields(body: Uint8Array): HeaderFieldView[] {
  const end = headerBlockLength(body);
  const text = Buffer.from(body.buffer, body.byteOffset, end).toString('latin1');
  const out: HeaderFieldView[] = [];
  const counts = new Map<string, number>();
  // Lines ending in CRLF (or bare LF, which the ingress refuses anyway).
  const lines = text.split(/\r?\n/);
  let current: { name: string; value: string } | null = null;
  const flush = () => {
    if (!current) return;
    const n = counts.get(current.name) ?? 0;
    counts.set(current.name, n + 1);
    out.push({ name: current.name, value: current.value.trim(), index: n });
    current = null;
  };
  for (const line of lines) {
    if (line === '') continue;
    if ((line[0] === ' ' || line[0] === '\t') && current) {
      current.value += ` ${line.trim()}`;
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    // A line without a colon is not a field (malformed); it still counts as a name-less entry.
    current =
      colon > 0
        ? { name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1) }
        : { name: '', value: line };
  }
  flush();
  return out;
}
