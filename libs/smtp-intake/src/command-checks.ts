/**
 * The checks of MAIL FROM and RCPT TO that do not depend on who the service
 * is (MX or submission): the parameters of the extensions we advertise, the
 * sender's syntax, RFC 3461's length limits, and whether a declared SIZE fits
 * the body budget now. Each answers the refusal (SmtpError and a metrics
 * reason) or undefined.
 *
 *   SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET/ENVID and
 *   NOTIFY/ORCPT (RFC 3461), REQUIRETLS (RFC 8689 §2: smtp-server advertises
 *   it only on TLS sessions and refuses it without); anything else 555 5.5.4
 *   (RFC 5321 §4.1.1.11).
 */
import { STREAM_BUFFER_BYTES } from '@sluice/bus';
import { parseReversePath, type SmtpError, smtpError } from '@sluice/smtp';
import type { SMTPServerAddress } from 'smtp-server';
import type { BodyBudget } from './body-budget.ts';

export const MAIL_PARAMS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID', 'REQUIRETLS']);
export const RCPT_PARAMS = new Set(['NOTIFY', 'ORCPT']);
/** RFC 3461 §4.4: ENVID is at most 100 characters; §4.2: ORCPT at most 500. */
const MAX_ENVID = 100;
const MAX_ORCPT = 500;
/** About the most smtp-server hands over in one chunk (a socket read, plus what it carried over): a body may hold up to two past the inline limit. */
const MAX_SOCKET_READ = 64 * 1024;

export interface CommandRefusal {
  error: SmtpError;
  reason: string;
}

function unknownParameter(address: SMTPServerAddress, known: Set<string>): CommandRefusal | undefined {
  const args = address.args;
  const unknown = args ? Object.keys(args).find((k) => !known.has(k.toUpperCase())) : undefined;
  if (!unknown) return undefined;
  return {
    error: smtpError('unknownParameter', `Unsupported parameter ${unknown.slice(0, 32)}`),
    reason: 'unknown-parameter',
  };
}

/** MAIL FROM, in this order: unknown parameter, sender syntax, ENVID length, declared SIZE over the budget (452, RFC 1870 §6.1). */
export function mailFromRefusal(
  address: SMTPServerAddress,
  opts: { smtputf8: boolean; inlineLimit: number; budget: BodyBudget },
): CommandRefusal | undefined {
  const unknown = unknownParameter(address, MAIL_PARAMS);
  if (unknown) return unknown;
  if (!parseReversePath(address.address, { smtputf8: opts.smtputf8 }).ok)
    return { error: smtpError('badSenderSyntax'), reason: 'sender-syntax' };
  const envid = address.args ? address.args['ENVID'] : undefined;
  if (typeof envid === 'string' && envid.length > MAX_ENVID)
    return { error: smtpError('badParameter', 'ENVID longer than 100 characters'), reason: 'bad-parameter' };
  // A body over the inline limit streams to the object store: it needs the store's buffer.
  const declared = Number(address.args ? address.args['SIZE'] : undefined);
  const needs = declared > opts.inlineLimit ? STREAM_BUFFER_BYTES : declared;
  if (declared > 0 && needs > opts.budget.available)
    return { error: smtpError('bodiesInFlightFull'), reason: 'over-budget' };
  return undefined;
}

/** RCPT TO: an unknown parameter. */
export function rcptParameterRefusal(address: SMTPServerAddress): CommandRefusal | undefined {
  return unknownParameter(address, RCPT_PARAMS);
}

/** RCPT TO: ORCPT over 500 characters. */
export function orcptRefusal(address: SMTPServerAddress): CommandRefusal | undefined {
  if ((address.dsn?.orcpt?.length ?? 0) <= MAX_ORCPT) return undefined;
  return { error: smtpError('badParameter', 'ORCPT longer than 500 characters'), reason: 'bad-parameter' };
}

/**
 * The body budget must hold a body at the inline limit (with the socket read that crosses
 * it), then streaming: with less, some mail would get 452 forever. Throws naming `key`.
 */
export function assertBodyBudget(key: string, bytes: number, inlineLimit: number): void {
  const smallest = inlineLimit + 2 * MAX_SOCKET_READ + STREAM_BUFFER_BYTES;
  if (bytes < smallest) {
    throw new Error(
      `${key} (${bytes}) is below ${smallest} (the inline body limit, bus.inlineMaxBytes, plus ${2 * MAX_SOCKET_READ + STREAM_BUFFER_BYTES} for a body streaming into the object store): raise ${key}`,
    );
  }
}
