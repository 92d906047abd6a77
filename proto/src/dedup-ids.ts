/**
 * Every Nats-Msg-Id Sluice publishes with, made here and only here. A stage
 * publishes its output with a deterministic id BEFORE it acks its input; a
 * crash in between redelivers the input, the stage publishes again with the
 * same id, and JetStream's duplicate window (bus.duplicateWindow) stores the
 * message once. An id must therefore name the CONTENT of what is published,
 * never a position or a counter that a redelivery under another routing
 * table could give to different content (decisions/0006).
 */
import { createHash } from 'node:crypto';
import { contentHash } from './content-hash.ts';
import type { Envelope } from './envelope.ts';
import { newQueueId } from './queue-id.ts';

export const dedupIds = {
  /**
   * The ingress' publish of an accepted message: SHA-256 over what makes it
   * the same message from the same client (sender, recipients, body digest,
   * client IP), not over the queue id, which is new on every attempt. A
   * client that lost our 250 (a dropped connection after the final dot,
   * RFC 5321 §6.1, RFC 1047) sends it again and it is queued once.
   */
  accepted(env: Pick<Envelope, 'mailFrom' | 'recipients' | 'body' | 'client'>): string {
    const key = JSON.stringify([
      env.mailFrom.address,
      env.recipients.map((r) => r.address),
      env.body.sha256,
      env.client.ip,
    ]);
    return `mx:${createHash('sha256').update(key).digest('hex')}`;
  },

  /** The resolver's publish of one part to the rewrite stream (part ids are content-derived). */
  rewrite(partId: string): string {
    return `${partId}:rewrite`;
  },

  /**
   * The egress queue putting a waiting part back at the front of the deliver
   * stream (retry now, release, delete, bounce: services/egress queue-control.ts):
   * the n-th wake of the part, so a repeated operator request is stored once.
   */
  queueWake(partId: string, wake: number): string {
    return `${partId}:wake:${wake}`;
  },

  /** The rewriter's publish of one part to the deliver stream. */
  deliver(partId: string): string {
    return `${partId}:deliver`;
  },

  /**
   * The resolver's dead letter of one recipient branch that resolved to
   * nothing: named by the branch (the accepted recipient, the address where
   * expansion stopped and why), not by its index among the failures.
   */
  resolverDead(queueId: string, branch: { recipient: string; at: string; kind: string }): string {
    return `${queueId}:resolver-dead:${contentHash(['resolver-dead', branch.recipient, branch.at, branch.kind])}`;
  },

  /**
   * The egress' delivery status notification about some recipients of one
   * message (RFC 3464): named by the queue id and the reported (action,
   * recipient) set, so a redelivered part that fails the same recipients
   * again publishes the same DSN and the resolve stream keeps one.
   */
  dsn(queueId: string, reported: ReadonlyArray<{ action: string; address: string }>): string {
    return `${queueId}:dsn:${dsnDigest(queueId, reported)}`;
  },

  /**
   * The queue id of that DSN: the original's time prefix and 16 characters of
   * the same digest, so a republish carries the same id (and body key).
   */
  dsnQueueId(queueId: string, reported: ReadonlyArray<{ action: string; address: string }>): string {
    return `${queueId.slice(0, 10)}${dsnDigest(queueId, reported).slice(0, 16)}`;
  },

  /** A forward-failure notice to the owner of a forward about one message. */
  forwardNotice(queueId: string, owner: string): string {
    return `${queueId}:forward-notice:${contentHash(['forward-notice', queueId, owner.toLowerCase()])}`;
  },

  /**
   * The egress' daily TLS-RPT report (RFC 8460) for one policy domain, UTC
   * day and mailto rua: whichever replica sends it, and however often, the
   * resolve stream keeps one.
   */
  tlsReport(day: string, domain: string, rua: string): string {
    return `tlsrpt:${tlsReportDigest(day, domain, rua)}`;
  },

  /** The queue id of that report: the day's time prefix and 16 characters of the same digest. */
  tlsReportQueueId(day: string, domain: string, rua: string): string {
    return `${newQueueId(Date.parse(`${day}T00:00:00Z`)).slice(0, 10)}${tlsReportDigest(day, domain, rua).slice(0, 16)}`;
  },

  /**
   * A stage giving up on a stream message (invalid, or failed too often): the
   * stream sequence names it, so a crash between the dead-letter publish and
   * the ack does not store it twice.
   */
  deadLetter(stream: string, seq: number): string {
    return `dead:${stream}:${seq}`;
  },
} as const;

function tlsReportDigest(day: string, domain: string, rua: string): string {
  return contentHash(['tlsrpt', day, domain.toLowerCase(), rua.toLowerCase()]);
}

function dsnDigest(queueId: string, reported: ReadonlyArray<{ action: string; address: string }>): string {
  const set = reported.map((r) => `${r.action}:${r.address.toLowerCase()}`).sort();
  return contentHash(['dsn', queueId, set]);
}
