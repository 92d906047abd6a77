/**
 * The one way to BUILD a header field Sluice prepends to a message (Received,
 * Authentication-Results, later DKIM-Signature, ARC-*): `headerField(name,
 * value, addedBy)` checks the field where it is made, so a value that could
 * start a header of its own or end the header block is refused at the stage
 * that produced it — with the header's name in the error — and never first
 * at the egress, after the message was accepted and queued.
 *
 * RFC 5322 §2.2: a field name is printable US-ASCII (33-126) except ":".
 * A value may be folded (§2.2.3: CRLF immediately followed by a space or a
 * tab); any other CR or LF, and NUL (§4.1 obsolete, never generated), is
 * refused. message-assembly.ts applies the same check to what arrives from
 * the bus, as the last line of defence.
 */
import type { PrependHeader } from '@sluice/proto';

const FIELD_NAME = /^[!-9;-~]+$/;
/** CR not followed by LF, LF not preceded by CR, CRLF not followed by WSP, or NUL. */
const UNSAFE_IN_VALUE = /\r(?!\n)|(?<!\r)\n|\r\n(?![ \t])|\0/;

export class HeaderFieldError extends Error {
  override name = 'HeaderFieldError';
}

/** Why "name: value" cannot be written as one header field, or undefined when it can. */
export function headerFieldProblem(name: string, value: string): string | undefined {
  if (!FIELD_NAME.test(name)) {
    return `invalid header name ${JSON.stringify(name)}: printable ASCII without ":" (RFC 5322 §2.2)`;
  }
  const bad = UNSAFE_IN_VALUE.exec(value);
  if (bad) {
    const what = bad[0] === '\0' ? 'a NUL' : 'a CR or LF that is not a fold (CRLF + space or tab)';
    return `header ${name} has ${what} at offset ${bad.index} (RFC 5322 §2.2.3)`;
  }
  return undefined;
}

/** A header field to prepend; throws HeaderFieldError if it could break the header block. */
export function headerField(name: string, value: string, addedBy: string): PrependHeader {
  const problem = headerFieldProblem(name, value);
  if (problem) throw new HeaderFieldError(problem);
  return { name, value, addedBy };
}
