/**
 * Plus-addressing (subaddressing, RFC 5233 §2 calls the part after the
 * separator the "detail"): user+tag@domain resolves as user@domain when
 * user+tag@ has no rule of its own. The separator is routing.plusSeparator
 * ('' turns it off). The first separator splits, as Postfix'
 * recipient_delimiter does; a local part starting with the separator has no
 * user part and is left alone.
 */
import type { ParsedAddress } from './address.ts';

export function plusBase(a: ParsedAddress, separator: string): ParsedAddress | null {
  if (separator === '') return null;
  const at = a.local.indexOf(separator);
  if (at <= 0) return null;
  const local = a.local.slice(0, at);
  return { local, domain: a.domain, key: `${local.toLowerCase()}@${a.domain}` };
}
