/**
 * Reads the one thing Sluice needs from an Autodiscover POX request — the
 * EMailAddress — without an XML parser. The request body comes from anyone on
 * the Internet, and a general parser brings DTDs: external entities (XXE:
 * reading local files, server-side requests) and entity expansion ("billion
 * laughs"). A legitimate request ([MS-OXDSCLI] §2.2.3) has neither, so any
 * markup declaration ("<!") is refused outright, as is any entity reference
 * other than the five predefined ones (XML 1.0 §4.6) and numeric character
 * references. The body size is capped by the server before this is called.
 */

export const AUTODISCOVER_REQUEST_NS =
  'http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006';

export type AutodiscoverRequest =
  | { ok: true; emailAddress: string; acceptableResponseSchema?: string }
  | { ok: false; reason: string };

const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Character data with the predefined entities and character references resolved; undefined for any other "&". */
function decodeText(raw: string): string | undefined {
  let bad = false;
  const text = raw.replace(/&([^;&\s]{1,10});|&/g, (whole, name: string | undefined) => {
    if (name === undefined) {
      bad = true;
      return whole;
    }
    const hex = /^#x([0-9a-f]{1,6})$/i.exec(name);
    const dec = /^#([0-9]{1,7})$/.exec(name);
    const code = hex ? Number.parseInt(hex[1]!, 16) : dec ? Number.parseInt(dec[1]!, 10) : undefined;
    if (code !== undefined) {
      if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
        bad = true;
        return whole;
      }
      return String.fromCodePoint(code);
    }
    const predefined = PREDEFINED[name];
    if (predefined === undefined) bad = true;
    return predefined ?? whole;
  });
  return bad ? undefined : text;
}

/** The text of the single element named `local` (any namespace prefix), or why there is none. */
function singleElementText(body: string, local: string): { text?: string; count: number } {
  const re = new RegExp(
    `<(?:[A-Za-z_][\\w.-]*:)?${local}(?:\\s[^>]*)?>([^<]*)</(?:[A-Za-z_][\\w.-]*:)?${local}\\s*>`,
    'g',
  );
  const found = [...body.matchAll(re)];
  return found.length === 1 ? { text: found[0]![1]!, count: 1 } : { count: found.length };
}

export function parseAutodiscoverRequest(body: string): AutodiscoverRequest {
  // No DOCTYPE, ENTITY, comment or CDATA section: nothing a DTD could hide behind.
  if (body.includes('<!'))
    return { ok: false, reason: 'markup declarations (DOCTYPE, ENTITY) are not accepted' };
  if (!/^\uFEFF?\s*(?:<\?xml\s[^>]*\?>\s*)?<(?:[A-Za-z_][\w.-]*:)?Autodiscover[\s>]/.test(body)) {
    return { ok: false, reason: 'not an Autodiscover request' };
  }
  const email = singleElementText(body, 'EMailAddress');
  if (email.text === undefined) {
    return { ok: false, reason: email.count === 0 ? 'no EMailAddress' : 'more than one EMailAddress' };
  }
  const emailAddress = decodeText(email.text)?.trim();
  if (emailAddress === undefined) return { ok: false, reason: 'unknown entity reference in EMailAddress' };
  const schema = singleElementText(body, 'AcceptableResponseSchema');
  if (schema.count > 1) return { ok: false, reason: 'more than one AcceptableResponseSchema' };
  const acceptableResponseSchema = schema.text === undefined ? undefined : decodeText(schema.text)?.trim();
  if (schema.text !== undefined && acceptableResponseSchema === undefined) {
    return { ok: false, reason: 'unknown entity reference in AcceptableResponseSchema' };
  }
  return acceptableResponseSchema === undefined
    ? { ok: true, emailAddress }
    : { ok: true, emailAddress, acceptableResponseSchema };
}
