/**
 * Which forward values read from LDAP may become routing rules. A directory
 * is edited by many hands (userdir-ldap lets every user set their own
 * emailForward), so a value is routed only when it is a plain address
 * local@domain. Refused, and reported with the reason, never routed:
 *   - CR, LF or any other control character (header / SMTP command injection);
 *   - a pipe ("|/usr/bin/prog") or a file ("/var/mail/x"), which .forward
 *     files allow and a mail transport must not execute or write;
 *   - anything else that is not local@domain (spaces, several "@", brackets, commas);
 *   - the entry's own address (a self-loop): mail would circle.
 */
import { parseAddress } from './address.ts';

export type ForwardCheck = { ok: true; address: string } | { ok: false; reason: string };

/** RFC 5321 §4.1.2 dot-atom local part and a host name domain: what a forward may be. */
const PLAIN_ADDRESS =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

export function checkForward(value: string, ownAddresses: readonly string[]): ForwardCheck {
  if (/[\x00-\x1f\x7f]/.test(value)) return { ok: false, reason: 'contains a control character (CR/LF)' };
  const v = value.trim();
  if (v.startsWith('|')) return { ok: false, reason: 'a pipe to a program' };
  if (v.startsWith('/') || v.startsWith('~') || v.startsWith('.')) return { ok: false, reason: 'a file' };
  if (v.startsWith(':include:')) return { ok: false, reason: 'an include file' };
  if (v.length > 254 || !PLAIN_ADDRESS.test(v))
    return { ok: false, reason: 'not a plain address (local@domain)' };
  const key = parseAddress(v)?.key;
  if (key && ownAddresses.includes(key)) return { ok: false, reason: "the entry's own address (a loop)" };
  return { ok: true, address: v };
}
