/**
 * Quoted local parts in MAIL FROM / RCPT TO (RFC 5321 §4.1.2:
 * Quoted-string = DQUOTE *QcontentSMTP DQUOTE, spaces and "@" allowed
 * inside). smtp-server splits the command on whitespace and the path on "@",
 * so `<"a b"@example.org>` gets 501. On one connection (decision 0020: a
 * wrapped internal, `_parseAddressCommand`), a path holding a quoted string
 * is parsed with a placeholder in its place, so the parameters are still
 * smtp-server's, and the real path is put back. Its syntax is then checked
 * by our own parser (libs/smtp address.ts) in the MAIL/RCPT handlers.
 */

interface Parsed {
  address: string;
  args: false | Record<string, string | true>;
}
interface AddressParser {
  _parseAddressCommand(name: string, command: Buffer | string): Parsed | false;
}

const PLACEHOLDER = 'quoted@placeholder.invalid';
/** The reverse- or forward-path in angle brackets, quoted strings allowed (qtextSMTP, quoted-pairSMTP). */
const QUOTED_PATH =
  /^([^:<]*:\s*)<((?:"(?:[\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\x20-\x7e])*"|[^<>"\s])*)>(.*)$/s;
/** RFC 5321 §4.1.2 / Appendix C: a source route is accepted and ignored. */
const SOURCE_ROUTE = /^@[^\s,:@]+(?:,@[^\s,:@]+)*:/;

export function acceptQuotedLocalParts(conn: unknown): void {
  const c = conn as AddressParser;
  const parse = c._parseAddressCommand.bind(c);
  c._parseAddressCommand = (name, command) => {
    const text = Buffer.isBuffer(command) ? command.toString('utf8') : String(command ?? '');
    const m = QUOTED_PATH.exec(text);
    if (!m || !m[2]!.includes('"')) return parse(name, command);
    const parsed = parse(name, `${m[1]}<${PLACEHOLDER}>${m[3]}`);
    if (parsed && parsed.address === PLACEHOLDER) parsed.address = m[2]!.replace(SOURCE_ROUTE, '');
    return parsed;
  };
}
