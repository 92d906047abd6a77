/**
 * LDAP search filters built from values that come from outside (an address's
 * local part). RFC 4515 §3: in an assertion value the characters `*`, `(`,
 * `)`, `\` and NUL must be written as `\` and two hex digits; we also escape
 * every byte outside printable ASCII, so a value can never close the
 * assertion, open a new one or add a wildcard (LDAP filter injection).
 */

/** Escape a value for use inside a filter assertion (RFC 4515 §3 `valueencoding`). */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    const special = c === '*' || c === '(' || c === ')' || c === '\\' || byte === 0;
    out += special || byte < 0x20 || byte > 0x7e ? `\\${byte.toString(16).padStart(2, '0')}` : c;
  }
  return out;
}

/** The configured filter narrowed to one uid: (&FILTER(ATTR=escaped value)). */
export function entryFilter(filter: string, attribute: string, value: string): string {
  return `(&${filter}(${attribute}=${escapeFilterValue(value)}))`;
}
