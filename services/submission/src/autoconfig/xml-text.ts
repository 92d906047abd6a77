/**
 * Text for the XML documents the autoconfig endpoint serves (Mozilla
 * clientConfig, Autodiscover, Apple plist). Every value that reaches a
 * document goes through `xmlText`: the five XML special characters become
 * entity references, and characters XML 1.0 cannot carry at all (most C0
 * controls, lone surrogates, U+FFFE/U+FFFF — XML 1.0 §2.2 Char) are refused
 * rather than escaped, because no escape makes them legal and a client that
 * meets one rejects the whole document.
 */

/** XML 1.0 §2.2: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. */
const NOT_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/** True when every character of `s` may appear in an XML 1.0 document. */
export function isXmlSafe(s: string): boolean {
  return !NOT_XML_CHAR.test(s);
}

/** `s` as XML character data or attribute value (§2.4, §3.3.3); throws on characters XML cannot carry. */
export function xmlText(s: string): string {
  if (!isXmlSafe(s)) throw new Error('text holds a character XML 1.0 cannot carry');
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}
