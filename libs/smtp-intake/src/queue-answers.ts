/**
 * What the ingress answers after the final dot, given what the filter and
 * the queue said. RFC 5321 §6.1: 250 means we took responsibility, so 250 is
 * sent only after the queue's PubAck; every other outcome is a specific
 * refusal the client can act on, and none is a silent accept.
 *
 *   filter reject                  -> 550 5.7.1 (+ the filter's short reason)
 *   filter greylist                -> 451 4.7.1 Greylisted
 *   filter tempfail                -> 451 4.7.1 (+ the filter's short reason)
 *   filter accept / tag            -> queued, with the filter's prepend headers
 *                                     and removeHeaders copied to the envelope
 *   filter busy (asked twice)      -> 451 4.3.2
 *   filter silent, failed, garbled -> 451 4.3.0
 *   queue full                     -> 452 4.3.1
 *   no PubAck (timeout, no quorum) -> 451 4.3.0
 */
import { BusPublishError, RpcError } from '@sluice/bus';
import { type FilterReply, filterReplySchema } from '@sluice/proto';
import { type SmtpError, safeReplyText, smtpError } from '@sluice/smtp';

export type FilterOutcome =
  | { kind: 'accept'; reply: FilterReply }
  | { kind: 'refuse'; error: SmtpError; reason: string; reply?: FilterReply };

const decoder = new TextDecoder();

/** Interpret the filter's answer (or the failure to get one). */
export function filterOutcome(answer: { data: Uint8Array } | { error: unknown }): FilterOutcome {
  if ('error' in answer && answer.error instanceof RpcError && answer.error.code === 'busy')
    return { kind: 'refuse', error: smtpError('filterBusy'), reason: 'filter-busy' };
  if ('error' in answer)
    return { kind: 'refuse', error: smtpError('filterUnavailable'), reason: 'filter-unavailable' };
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(answer.data));
  } catch {
    return { kind: 'refuse', error: smtpError('filterUnavailable'), reason: 'filter-unreadable' };
  }
  const parsed = filterReplySchema.safeParse(raw);
  if (!parsed.success)
    return { kind: 'refuse', error: smtpError('filterUnavailable'), reason: 'filter-unreadable' };
  const reply = parsed.data;
  switch (reply.verdict.action) {
    case 'accept':
    case 'tag':
      return { kind: 'accept', reply };
    case 'reject': {
      const why = reply.verdict.reason ? safeReplyText(reply.verdict.reason) : '';
      const text = why ? `Message rejected: ${why}` : undefined;
      return { kind: 'refuse', error: smtpError('policyReject', text), reason: 'filter-reject', reply };
    }
    case 'greylist':
      // RFC 6647 §2.1: a temporary failure the sender's retry gets past; 4.7.1 is the common code.
      return {
        kind: 'refuse',
        error: smtpError('policyTempfail', 'Greylisted, please try again later'),
        reason: 'filter-greylist',
        reply,
      };
    case 'tempfail': {
      // DNS temperror (RFC 7208 §2.6.6, RFC 9989) or a content scanner down: 451, the client retries.
      const why = reply.verdict.reason ? safeReplyText(reply.verdict.reason) : '';
      const text = why ? `Message deferred: ${why}` : undefined;
      return { kind: 'refuse', error: smtpError('policyTempfail', text), reason: 'filter-tempfail', reply };
    }
  }
}

/** The reply for a publish that did not get its PubAck. */
export function publishFailure(err: unknown): SmtpError {
  if (err instanceof BusPublishError && err.full) return smtpError('queueFull', undefined, { cause: err });
  return smtpError('queueUnavailable', undefined, { cause: err });
}
