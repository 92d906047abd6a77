/**
 * The header block of a message as DKIM sees it (RFC 6376 §3.4, RFC 5322
 * §2.2): fields in order, each with its exact text (folds included, without
 * the final CRLF), and where the body starts. Only what signing needs; the
 * message is never rewritten.
 */

export interface HeaderField {
  /** Field name as written. */
  name: string;
  /** "Name: value" exactly as written, folds included, no final CRLF. */
  raw: string;
}

export interface SplitMessage {
  headers: HeaderField[];
  /** The body bytes after the blank line (empty when there is none). */
  body: Buffer;
}

export function splitMessage(message: Uint8Array): SplitMessage {
  const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  let end = buf.indexOf('\r\n\r\n');
  let bodyStart: number;
  if (buf.subarray(0, 2).toString() === '\r\n') {
    end = 0;
    bodyStart = 2;
  } else if (end < 0) {
    end = buf.length;
    bodyStart = buf.length;
  } else {
    bodyStart = end + 4;
  }
  const text = buf.subarray(0, end).toString('utf8');
  const headers: HeaderField[] = [];
  for (const line of text === '' ? [] : text.split('\r\n')) {
    const last = headers[headers.length - 1];
    if (/^[ \t]/.test(line) && last) {
      last.raw += `\r\n${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    headers.push({ name: (colon >= 0 ? line.slice(0, colon) : line).trim(), raw: line });
  }
  return { headers, body: buf.subarray(bodyStart) };
}

/** The value of a field: after the colon, unfolded. */
export function fieldValue(field: HeaderField): string {
  const colon = field.raw.indexOf(':');
  return (colon >= 0 ? field.raw.slice(colon + 1) : '').replace(/\r\n/g, '');
}
