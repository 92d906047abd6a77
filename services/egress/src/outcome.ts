/**
 * What a reply means for a recipient (RFC 5321 §4.2.1): 2yz positive
 * completion -> delivered; 5yz permanent negative -> failed; 4yz transient
 * negative -> deferred (tried again later). Anything else (no reply: the
 * connection broke, a timeout) is deferred too, as RFC 5321 §3.8 asks for a
 * connection lost mid-transaction.
 */
export type Outcome = 'delivered' | 'deferred' | 'failed';

export function outcomeOfCode(code: number): Outcome {
  if (code >= 200 && code < 300) return 'delivered';
  if (code >= 500 && code < 600) return 'failed';
  return 'deferred';
}

/** The basic code at the start of a reply line ("550 5.1.1 ..." -> 550), 0 when there is none. */
export function replyCode(reply: string): number {
  const m = /^([2-5]\d\d)(?:[ -]|$)/.exec(reply);
  return m ? Number(m[1]) : 0;
}

/** A remote reply on one line (multi-line replies joined), for the ledger, events and logs. */
export function oneLine(reply: string): string {
  return reply
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .join(' / ');
}
