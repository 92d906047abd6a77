/**
 * Decides which delivery status notifications one delivery attempt owes and
 * queues them: DSNs to the envelope sender (RFC 3461, RFC 3464, built by
 * dsn.ts) and forward-failure notices to the owner of a forward. They enter
 * the pipeline like any message: published to the resolve stream with
 * source 'dsn' and the null reverse-path (RFC 5321 §4.5.5), so the resolver
 * routes them (a bounce to one of our SRS addresses is reversed to the real
 * sender there) and the rewriter DKIM-signs them.
 *
 * Rules (docs/egress-dsn.md):
 *   - never about a message with the null sender or about a DSN (source
 *     'dsn'): RFC 3461 §6.2, RFC 5321 §4.5.5 — no bounce loops;
 *   - NOTIFY=NEVER suppresses every DSN for the recipient; with NOTIFY given,
 *     only the listed events are reported; without NOTIFY, FAILURE (and DELAY
 *     when delay warnings are configured) — RFC 3461 §4.1;
 *   - NOTIFY=SUCCESS: "relayed" after a 250 from an SMTP hop that does not
 *     advertise DSN (RFC 3461 §5.2.2); nothing when it does, since it took
 *     NOTIFY/ORCPT from us and reports itself (§5.2.1, dsn-relay.ts);
 *     "delivered" after an LMTP final delivery;
 *   - at most one DSN per recipient and event: failures and successes are
 *     reported only by the attempt that makes them final (the ledger skips
 *     final recipients on every later attempt), and the DSN's Nats-Msg-Id
 *     names the queue id and the reported set, so a redelivery after a
 *     crash between this publish and the ledger write is dropped as a
 *     duplicate; a delay warning is guarded by a ledger marker per recipient.
 *
 * This runs BEFORE the attempt's outcomes are written to the ledger: a crash
 * in between repeats the attempt and the same DSN (deduplicated), instead of
 * losing it. A DSN that cannot be queued is logged and counted; it never
 * turns into another delivery attempt.
 */
import type { EnvelopeDelivery } from '@sluice/bus';
import {
  type DsnAction,
  dedupIds,
  ENVELOPE_VERSION,
  type Envelope,
  type Recipient,
  subjects,
} from '@sluice/proto';
import type { ServiceContext } from '@sluice/runtime';
import { arrivalOf, buildDsn, type DsnRecipient, headerBlock } from './dsn.ts';
import { buildForwardNotice } from './forward-notice.ts';
import { ledgerKey } from './ledger.ts';
import type { Outcome } from './outcome.ts';
import { outgoingMessage, readMessageStart } from './outgoing-message.ts';

/** One recipient's outcome of this attempt, as deliver.ts has it. */
export interface AttemptOutcome {
  address: string;
  outcome: Outcome;
  reply: string;
  host?: string;
  /** The next hop advertised DSN and got NOTIFY/ORCPT from us (RFC 3461 §5.2.1). */
  dsnPassedOn?: boolean;
}

export type NotifyDeps = Pick<ServiceContext, 'config' | 'bus' | 'log' | 'metrics' | 'redact'> & {
  now?: () => number;
};

/** Our own replies say "(sluice)": no remote MTA gave them. */
const isLocalReply = (reply: string) => reply.includes('(sluice)');

/** No DSN about a DSN or about a message with the null sender (RFC 3461 §6.2, RFC 5321 §4.5.5). */
export function dsnSuppressed(env: Pick<Envelope, 'source' | 'mailFrom'>): boolean {
  return env.source === 'dsn' || env.mailFrom.address === '';
}

/**
 * The action a DSN reports for this outcome, or undefined when the
 * recipient's NOTIFY (RFC 3461 §4.1) does not ask for one.
 */
export function reportedAction(
  recipient: Pick<Recipient, 'notify'> | undefined,
  outcome: Outcome,
  opts: { lmtp: boolean; delayWarnings: boolean; dsnPassedOn?: boolean },
): DsnAction | undefined {
  const notify = recipient?.notify;
  if (notify?.includes('NEVER')) return undefined;
  if (outcome === 'failed') return notify === undefined || notify.includes('FAILURE') ? 'failed' : undefined;
  if (outcome === 'delivered') {
    if (!notify?.includes('SUCCESS')) return undefined;
    if (opts.lmtp) return 'delivered';
    return opts.dsnPassedOn ? undefined : 'relayed';
  }
  if (!opts.delayWarnings) return undefined;
  return notify === undefined || notify.includes('DELAY') ? 'delayed' : undefined;
}

function recipientOf(env: Envelope, address: string): Recipient | undefined {
  return env.recipients.find((r) => r.address === address);
}

/** The DSNs and notices owed for this attempt, queued before the outcomes are written to the ledger. */
export async function sendNotifications(
  env: Envelope,
  d: EnvelopeDelivery,
  results: readonly AttemptOutcome[],
  deps: NotifyDeps,
): Promise<void> {
  const cfg = deps.config.egress.dsn;
  try {
    if (cfg.enabled && !dsnSuppressed(env)) await sendDsn(env, d, results, deps);
    if (deps.config.egress.forwardFailureNotice.enabled && env.source !== 'dsn') {
      await sendForwardNotices(env, d, results, deps);
    }
  } catch (err) {
    deps.log.error({ err, queueId: env.id }, 'delivery status notification could not be queued');
  }
}

async function sendDsn(
  env: Envelope,
  d: EnvelopeDelivery,
  results: readonly AttemptOutcome[],
  deps: NotifyDeps,
): Promise<void> {
  const now = (deps.now ?? Date.now)();
  const cfg = deps.config.egress.dsn;
  const lmtp = env.route?.kind === 'smtp' && env.route.lmtp;
  const age = now - arrivalOf(env).getTime();
  const delayWarnings = cfg.delayWarningAfter > 0 && age >= cfg.delayWarningAfter * 1000;
  const reported: DsnRecipient[] = [];
  for (const r of results) {
    const rcpt = recipientOf(env, r.address);
    const action = reportedAction(rcpt, r.outcome, { lmtp, delayWarnings, dsnPassedOn: r.dsnPassedOn });
    if (!action) continue;
    if (action === 'delayed') {
      // One delay warning per recipient over all attempts: the first to write the marker sends it.
      const marker = ledgerKey(`${env.id}-dsn-delayed`, r.address);
      const earlier = await deps.bus.ledgerPut(marker, {
        status: 'delivered',
        at: new Date(now).toISOString(),
        reply: 'delay DSN queued',
      });
      if (earlier) continue;
    }
    reported.push({
      finalRecipient: r.address,
      orcpt: rcpt?.orcpt,
      action,
      reply: r.reply,
      remoteMta: r.host && !isLocalReply(r.reply) ? r.host : undefined,
      lastAttempt: new Date(now),
      willRetryUntil: new Date(arrivalOf(env).getTime() + deps.config.bus.queueLifetime * 1000),
    });
  }
  if (reported.length === 0) return;

  const headersOnly = env.mailFrom.ret === 'HDRS';
  const original = await returnedContent(env, d, deps, headersOnly, cfg.returnContentMaxBytes);
  const set = reported.map((r) => ({ action: r.action, address: r.finalRecipient }));
  const dsnQueueId = dedupIds.dsnQueueId(env.id, set);
  const bytes = buildDsn({
    reportingMta: deps.config.hostname,
    from: mailerDaemon(deps.config),
    to: env.mailFrom.original ?? env.mailFrom.address,
    queueId: env.id,
    dsnQueueId,
    arrivalDate: arrivalOf(env),
    envid: env.mailFrom.envid,
    recipients: reported,
    original: original.bytes,
    ret: original.headersOnly ? 'HDRS' : 'FULL',
    returnContentMaxBytes: cfg.returnContentMaxBytes,
    now: new Date(now),
  });
  // The envelope recipient is the sender as it reached the next hop (an SRS
  // address of ours is reversed by the resolver); To: names the real sender.
  const published = await publishNotice(
    d,
    {
      queueId: dsnQueueId,
      to: env.mailFrom.address,
      bytes,
      msgId: dedupIds.dsn(env.id, set),
      // RFC 8689 §5: a DSN about a REQUIRETLS message is protected like it (it quotes its header).
      requireTls: env.mailFrom.requireTls === true,
    },
    deps,
  );
  for (const r of reported) deps.metrics.dsnsQueued.inc({ action: r.action });
  deps.log.info(
    {
      queueId: env.id,
      dsnQueueId,
      duplicate: published.duplicate,
      recipients: reported.map((r) => ({ address: deps.redact.address(r.finalRecipient), action: r.action })),
    },
    'delivery status notification queued for the sender',
  );
}

async function sendForwardNotices(
  env: Envelope,
  d: EnvelopeDelivery,
  results: readonly AttemptOutcome[],
  deps: NotifyDeps,
): Promise<void> {
  const now = (deps.now ?? Date.now)();
  const cfg = deps.config.egress.forwardFailureNotice;
  for (const r of results) {
    // Only a refusal by the forward target itself (a remote 5xx), not our own failures.
    if (r.outcome !== 'failed' || !r.host || isLocalReply(r.reply)) continue;
    const owner = recipientOf(env, r.address)?.forwardOwner;
    if (!owner) continue;
    const day = new Date(now).toISOString().slice(0, 10).replaceAll('-', '');
    let slot: number | undefined;
    for (let i = 0; i < cfg.maxPerDay && slot === undefined; i++) {
      const earlier = await deps.bus.ledgerPut(ledgerKey(`fwdnotice-${day}-${i}`, owner), {
        status: 'delivered',
        at: new Date(now).toISOString(),
        reply: 'forward-failure notice queued',
      });
      if (!earlier) slot = i;
    }
    if (slot === undefined) {
      deps.log.info(
        { queueId: env.id, owner: deps.redact.address(owner) },
        'forward-failure notice not sent: the owner reached egress.forwardFailureNotice.maxPerDay today',
      );
      continue;
    }
    const queueId = dedupIds.dsnQueueId(env.id, [{ action: 'forward-notice', address: owner }]);
    const bytes = buildForwardNotice({
      reportingMta: deps.config.hostname,
      from: mailerDaemon(deps.config),
      owner,
      target: r.address,
      senderDomain: senderDomainOf(env),
      arrivalDate: arrivalOf(env),
      reply: r.reply,
      remoteMta: r.host,
      noticeQueueId: queueId,
      now: new Date(now),
    });
    await publishNotice(d, { queueId, to: owner, bytes, msgId: dedupIds.forwardNotice(env.id, owner) }, deps);
    deps.metrics.dsnsQueued.inc({ action: 'forward-notice' });
    deps.log.info(
      { queueId: env.id, noticeQueueId: queueId, owner: deps.redact.address(owner) },
      'forward-failure notice queued for the owner of the forward',
    );
  }
}

/** Headers read at most this far into a message returned headers-only. */
const MAX_HEADER_BYTES = 1024 * 1024;

/**
 * What the DSN returns of the original (RFC 3461 §4.3 RET): the whole
 * message when FULL and it fits the cap, else its header block. Read as a
 * stream (bodies may be large, in the object store): a headers-only return
 * stops reading at the blank line.
 */
async function returnedContent(
  env: Envelope,
  d: EnvelopeDelivery,
  deps: NotifyDeps,
  hdrsAsked: boolean,
  cap: number,
): Promise<{ bytes: Buffer; headersOnly: boolean }> {
  const message = await outgoingMessage(env, d.inlineBody, deps.bus);
  const headersOnly = hdrsAsked || message.size > cap;
  const limit = headersOnly ? MAX_HEADER_BYTES : cap;
  const all = await readMessageStart(await message.open(), limit, headersOnly);
  return headersOnly ? { bytes: headerBlock(all), headersOnly } : { bytes: all, headersOnly };
}

function senderDomainOf(env: Envelope): string {
  const sender = env.mailFrom.original ?? env.mailFrom.address;
  const at = sender.lastIndexOf('@');
  return at >= 0 ? sender.slice(at + 1) : '(none)';
}

function mailerDaemon(config: NotifyDeps['config']): string {
  return config.egress.dsn.from ?? `MAILER-DAEMON@${config.domains.primary}`;
}

/** A message the egress generates (DSN, notice, TLS-RPT report). */
export interface GeneratedMessage {
  queueId: string;
  to: string;
  bytes: Buffer;
  /** Its Nats-Msg-Id (proto dedupIds): a republish is dropped as a duplicate. */
  msgId: string;
  /** Send it with REQUIRETLS (RFC 8689 §5). */
  requireTls?: boolean;
}

function publishNotice(
  d: EnvelopeDelivery,
  notice: GeneratedMessage,
  deps: NotifyDeps,
): Promise<{ duplicate: boolean }> {
  return publishGenerated(notice, deps, d.hold);
}

/**
 * Queue a generated message at the start of the pipeline: null sender,
 * source 'dsn' (never reported on itself), NOTIFY=NEVER. `whileFull`: the
 * caller's hold while the resolve stream is full.
 */
export async function publishGenerated(
  notice: GeneratedMessage,
  deps: Pick<NotifyDeps, 'config' | 'now'> & {
    bus: Pick<NotifyDeps['bus'], 'storeBody' | 'publishEnvelope'>;
  },
  whileFull?: EnvelopeDelivery['hold'],
): Promise<{ duplicate: boolean }> {
  const stored = await deps.bus.storeBody(notice.queueId, notice.bytes);
  const host = deps.config.hostname;
  const generated: Envelope = {
    v: ENVELOPE_VERSION,
    id: notice.queueId,
    receivedAt: new Date((deps.now ?? Date.now)()).toISOString(),
    source: 'dsn',
    receivedBy: host,
    client: { ip: '127.0.0.1', helo: host },
    mailFrom: {
      address: '',
      ...(notice.bytes.some((b) => b > 0x7f) ? { body: '8BITMIME' as const } : {}),
      ...(notice.requireTls ? { requireTls: true } : {}),
    },
    recipients: [{ address: notice.to, original: notice.to, status: 'pending', notify: ['NEVER'] }],
    body: stored.ref,
    prepend: [],
    hops: [],
  };
  return deps.bus.publishEnvelope(subjects.resolve, generated, stored.inline, {
    msgId: notice.msgId,
    ...(whileFull ? { whileFull } : {}),
  });
}
