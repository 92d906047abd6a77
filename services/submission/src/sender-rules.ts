/**
 * Which addresses an authenticated user may send as, in MAIL FROM and in the
 * From header (issue 13: "accepts any From header, which is probably a
 * mistake"):
 *
 *   1. their own address: login@ each of our domains (and login+tag@ with
 *      routing.plusSeparator);
 *   2. an address submission.senderGrants gives them (role addresses:
 *      info@, support@ for the listed users);
 *   3. an address that routes to them: the resolver's lookup of the address
 *      (the same RPC the MX asks at RCPT) reaches login@ a domain of ours,
 *      e.g. an alias of theirs or a list alias they are on.
 *
 * Anything else: 553 5.7.1 at MAIL FROM (RFC 5321 §4.2.2 "mailbox name not
 * allowed", RFC 3463 X.7.1), 550 5.7.1 after DATA for the From header (553 is
 * no reply to DATA). A resolver that cannot answer gives 451 4.7.0: the
 * client retries, nobody gets to send unchecked.
 *
 * Relay clients (mTLS) are checked by domain instead: the sender domains
 * configured for the client (submission.relay.clients[].senderDomains).
 */
import { type LookupReply, lookupReplySchema } from '@sluice/proto';
import { SmtpError, safeReplyText } from '@sluice/smtp';

export interface SenderPolicy {
  /** Our domains (primary and aliases), lower-case. */
  domains: string[];
  /** routing.plusSeparator ('' for none). */
  plusSeparator: string;
  /** submission.senderGrants: address -> logins (lower-case). */
  grants: Record<string, string[]>;
  /** Ask the resolver about an address (request/reply); rejects when no answer came. */
  lookup: (address: string) => Promise<Uint8Array>;
}

export type SenderDecision =
  | { ok: true; why: 'own' | 'grant' | 'routes' | 'relay-domain' }
  | { ok: false; error: SmtpError; reason: string };

const decoder = new TextDecoder();

const refused = (code: 553 | 550, text: string, reason: string): SenderDecision => ({
  ok: false,
  error: new SmtpError({ code, enhanced: '5.7.1', text: safeReplyText(text) }),
  reason,
});
const tempfail = (): SenderDecision => ({
  ok: false,
  error: new SmtpError({
    code: 451,
    enhanced: '4.7.0',
    text: 'Sender address cannot be checked now, try again later',
  }),
  reason: 'sender-check-unavailable',
});

function splitAddress(address: string): { local: string; domain: string } | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0) return undefined;
  return { local: address.slice(0, at).toLowerCase(), domain: address.slice(at + 1).toLowerCase() };
}

/** The user's own address(es): login@ each of our domains, with or without a +tag. */
export function isOwnAddress(
  user: string,
  address: string,
  p: Pick<SenderPolicy, 'domains' | 'plusSeparator'>,
) {
  const a = splitAddress(address);
  if (!a || !p.domains.includes(a.domain)) return false;
  const login = user.toLowerCase();
  if (a.local === login) return true;
  return p.plusSeparator !== '' && a.local.startsWith(`${login}${p.plusSeparator}`);
}

/** May `user` send as `address`? `where` picks the reply code: 553 at MAIL FROM, 550 after DATA. */
export async function checkUserSender(
  user: string,
  address: string,
  p: SenderPolicy,
  where: 'mail-from' | 'header-from',
): Promise<SenderDecision> {
  const code = where === 'mail-from' ? 553 : 550;
  const what = where === 'mail-from' ? 'Sender address' : 'From header address';
  if (address === '') return refused(code, `${what} must not be empty for authenticated mail`, 'null-sender');
  const addr = address.toLowerCase();
  if (isOwnAddress(user, addr, p)) return { ok: true, why: 'own' };
  if ((p.grants[addr] ?? []).includes(user.toLowerCase())) return { ok: true, why: 'grant' };
  const notYours = () =>
    refused(code, `${what} <${addr}> is not one of yours (logged in as ${user})`, `not-owned-${where}`);
  if (!splitAddress(addr) || !p.domains.includes(splitAddress(addr)!.domain)) return notYours();
  let reply: LookupReply;
  try {
    const parsed = lookupReplySchema.safeParse(JSON.parse(decoder.decode(await p.lookup(addr))));
    if (!parsed.success) return tempfail();
    reply = parsed.data;
  } catch {
    return tempfail();
  }
  if (reply.result === 'tempfail') return tempfail();
  if (reply.result !== 'ok') return notYours();
  const reaches = reply.reaches ?? [];
  return reaches.some((r) => isOwnAddress(user, r, p)) ? { ok: true, why: 'routes' } : notYours();
}

/** May a relay client with these sender domains send as `address`? */
export function checkRelaySender(
  client: { name: string; senderDomains: string[] },
  address: string,
  where: 'mail-from' | 'header-from',
): SenderDecision {
  const code = where === 'mail-from' ? 553 : 550;
  const what = where === 'mail-from' ? 'Sender address' : 'From header address';
  const a = splitAddress(address);
  // A relay client may send bounces of its own (null reverse-path, RFC 5321 §4.5.5) at MAIL FROM.
  if (address === '' && where === 'mail-from') return { ok: true, why: 'relay-domain' };
  if (a && client.senderDomains.includes(a.domain)) return { ok: true, why: 'relay-domain' };
  return refused(
    code,
    `${what} <${address.toLowerCase()}> is outside the domains relay client ${client.name} may use`,
    `relay-domain-${where}`,
  );
}
