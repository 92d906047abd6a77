/**
 * One delivery attempt of one part: the egress' handler for a message from
 * the deliver stream, returning what the bus should do with it.
 *
 *   1. Recipients already in the ledger (delivered or failed for good) are
 *      skipped, so a redelivered part never reaches anyone twice (the ledger
 *      is keyed by queue id and recipient, not by part: ledger.ts).
 *   2. Addresses and the EHLO name are checked: nothing with CR, LF or NUL
 *      (or angle brackets, which would end the path) goes into a command.
 *   3. The message is prepared (prepended headers + stored body, streamed:
 *      outgoing-message.ts), the destination planned (destination.ts) and the candidates tried in
 *      order until one opens a session (or yields a pooled one: session-pool.ts); the remaining
 *      recipients go in
 *      transactions of at most 100 (RFC 5321 §4.5.3.1.8: the minimum every
 *      server must accept).
 *   4. Each recipient's outcome: 2xx delivered, 5xx failed, anything else
 *      deferred. Deferred recipients of a message older than
 *      bus.queueLifetime fail as expired.
 *   5. Metrics and the timeline record every attempt's outcome first, so
 *      each delivery shows, duplicates included; a delivery that finds the
 *      ledger already final (another attempt won) counts as a repeat.
 *   6. Final outcomes go to the ledger BEFORE the disposition is returned
 *      (the bus acks only after that). After a remote 250 that write is
 *      sacred: it is held and retried through reconnects and full storage,
 *      the part kept claimed (working) meanwhile, and a redelivery of the
 *      part to this process waits for it (held-outcomes.ts). A failed ledger
 *      write never leads to another delivery attempt.
 *   7. Deferred recipients left: retry after the scheduled delay; else ack.
 *
 * The delivery queue (queued-delivery.ts) runs around this: it decides whether
 * the part is attempted now at all, and may force an outcome without a
 * connection (an operator's bounce or delete). The whole attempt runs under
 * egress.attemptTimeout (attempt-deadline.ts).
 *
 * Permanent failures are recorded (ledger, timeline, a warning with the
 * queue id) and reported to the sender: the DSNs and forward-failure
 * notices an attempt owes are queued by notify-sender.ts before the
 * outcomes go to the ledger (a crash in between repeats the same,
 * deduplicated DSN rather than losing it). The body is never
 * deleted here: the parts of a message share it, and the object store's TTL
 * removes it after the queue lifetime.
 */
import type { Disposition, EnvelopeDelivery, LedgerEntry, LedgerHold } from '@sluice/bus';
import type { SecureDns } from '@sluice/dns';
import { activeTraceFields } from '@sluice/log';
import { type Envelope, envelopeKey, eventBase, type TlsOutcome } from '@sluice/proto';
import type { ServiceContext } from '@sluice/runtime';
import { HeaderAssemblyError } from '@sluice/smtp';
import { runInSpan } from '@sluice/telemetry';
import { type AttemptDeadline, beforeDeadline, DeadlineError, withinDeadline } from './attempt-deadline.ts';
import { type ClientCert, clientCertFor } from './client-cert.ts';
import { type Candidate, type DnsLookup, destinationFor } from './destination.ts';
import { dsnToPassOn } from './dsn-relay.ts';
import { HeldOutcomes } from './held-outcomes.ts';
import { ledgerEntries, ledgerKey } from './ledger.ts';
import { localReplies } from './local-replies.ts';
import { sendNotifications } from './notify-sender.ts';
import { type Outcome, outcomeOfCode, replyCode } from './outcome.ts';
import { type OutgoingMessage, outgoingMessage } from './outgoing-message.ts';
import { messageTlsPlan, requireTlsApplies, requireTlsOpenFailure } from './require-tls.ts';
import { describeDuration, isExpired, retryDelayMs } from './retry-schedule.ts';
import type { SessionPool } from './session-pool.ts';
import {
  type RecipientReply,
  SessionOpenError,
  type SessionOptions,
  SmtpSession,
  type Transaction,
} from './smtp-session.ts';
import { type DestinationTls, destinationTls, type HostTls, type MtaStsSource } from './tls-policy.ts';
import { failureResultOf, recordTlsResult } from './tls-report.ts';
import type { TlsRptRecorder } from './tls-rpt-store.ts';

/** RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients per transaction. */
export const RECIPIENTS_PER_TRANSACTION = 100;

export type EgressDeps = Pick<
  ServiceContext,
  'config' | 'bus' | 'log' | 'metrics' | 'redact' | 'instance'
> & {
  dns: DnsLookup;
  /** Port of MX hosts (25; tests point it at a sink). */
  mxPort?: number;
  /** Sessions kept open per destination for the next message (session-pool.ts); none: one per delivery. */
  sessions?: SessionPool;
  now?: () => number;
  /** This process' held ledger writes and recent deliveries (default: one per process). */
  held?: HeldOutcomes;
  /** The DNSSEC-aware client of egress.dnsResolver: DANE and MTA-STS discovery (tls-policy.ts). */
  secureDns?: SecureDns;
  mtaSts?: MtaStsSource;
  /** Extra PKIX CAs for MTA-STS sessions (egress.mtaSts.caFile). */
  tlsCa?: Buffer;
  /** Counts DANE/MTA-STS results for the daily TLS-RPT reports (egress.tlsReports). */
  tlsRpt?: TlsRptRecorder;
  /**
   * The delivery queue's verdict instead of an attempt (queued-delivery.ts): every remaining
   * recipient gets this outcome and reply without a connection (bounce and delete by the
   * operator; expiry while the destination is backed off); `notify` false sends no DSN.
   */
  forced?: { outcome: 'failed' | 'deferred'; reply: string; notify: boolean };
  /** Told each attempt's outcomes, before expiry is applied (the queue's destination backoff). */
  onAttempt?: (results: ReadonlyArray<{ outcome: Outcome; reply: string }>) => void;
};

const processHeldOutcomes = new HeldOutcomes();

interface RecipientResult {
  address: string;
  outcome: Outcome;
  reply: string;
  host?: string;
  tls: TlsOutcome;
  /** The next hop took our RFC 3461 parameters (it advertised DSN): it reports from here on. */
  dsnPassedOn?: boolean;
}

/** What cannot go inside `<...>` in MAIL FROM / RCPT TO: line breaks, NUL, angle brackets, edge spaces. */
const UNSENDABLE = /[\r\n\0<>]|^\s|\s$/;

export function deliverPart(d: EnvelopeDelivery, deps: EgressDeps): Promise<Disposition> {
  const held = deps.held ?? processHeldOutcomes;
  return held.serialize(envelopeKey(d.envelope), () => deliverOnce(d, deps, held));
}

async function deliverOnce(d: EnvelopeDelivery, deps: EgressDeps, held: HeldOutcomes): Promise<Disposition> {
  const env = d.envelope;
  const partId = envelopeKey(env);
  const now = deps.now ?? Date.now;
  const log = deps.log.child({ queueId: env.id, partId, attempt: d.deliveryCount });
  if (!env.route) return { kind: 'dead', reason: 'envelope has no route: it did not pass the resolver' };

  const wanted = [
    ...new Set(
      env.recipients.filter((r) => r.status === 'pending' || r.status === 'deferred').map((r) => r.address),
    ),
  ];
  const ledger = await ledgerEntries(deps.bus, env, wanted);
  const restored = await restoreLostEntries(env.id, wanted, ledger, d, deps, held, log);
  const remaining = wanted.filter((a) => ledger.get(a) == null && !restored.has(a));
  if (remaining.length < wanted.length) {
    log.info(
      { skipped: wanted.length - remaining.length },
      'recipients already final in the ledger: not sent again',
    );
  }
  if (remaining.length === 0) return { kind: 'ack' };

  const heartbeat = setInterval(() => d.working(), Math.max(1000, (deps.config.bus.ackWait * 1000) / 3));
  let results: RecipientResult[];
  try {
    const attempted = deps.forced
      ? {
          results: remaining.map(
            (address): RecipientResult => ({
              address,
              outcome: deps.forced!.outcome,
              reply: deps.forced!.reply,
              tls: 'none',
            }),
          ),
        }
      : await withinDeadline(deps.config.egress.attemptTimeout * 1000, (deadline) =>
          attempt(env, d, remaining, deps, log, deadline),
        );
    if ('disposition' in attempted) return attempted.disposition;
    results = attempted.results;
    deps.onAttempt?.(results);
  } finally {
    clearInterval(heartbeat);
  }

  // Deferred recipients of a message past its lifetime fail as expired.
  const lifetime = deps.config.bus.queueLifetime;
  const expired = results.some((r) => r.outcome === 'deferred') && isExpired(env.receivedAt, now(), lifetime);
  if (expired) {
    for (const r of results) {
      if (r.outcome !== 'deferred') continue;
      r.outcome = 'failed';
      r.reply = localReplies.expired(describeDuration(lifetime), r.reply);
    }
  }

  const deferred = results.filter((r) => r.outcome === 'deferred');
  const delayMs = deferred.length > 0 ? retryDelayMs(deps.config.egress.retrySchedule, d.deliveryCount) : 0;
  const nextAttemptAt = deferred.length > 0 ? new Date(now() + delayMs).toISOString() : undefined;
  // The part stays claimed (working) until its outcome is recorded and durable in the ledger.
  const claim = setInterval(() => d.working(), Math.max(500, (deps.config.bus.ackWait * 1000) / 3));
  try {
    if (deps.forced?.notify !== false) await sendNotifications(env, d, results, deps);
    await finish(env, d, results, nextAttemptAt, deps, held, log);
  } finally {
    clearInterval(claim);
  }

  if (deferred.length > 0) {
    return {
      kind: 'retry',
      delayMs,
      reason: `${deferred.length} recipient(s) deferred: ${deferred[0]!.reply}`,
    };
  }
  return { kind: 'ack' };
}

type AttemptResult = { results: RecipientResult[] } | { disposition: Disposition };

async function attempt(
  env: Envelope,
  d: EnvelopeDelivery,
  remaining: string[],
  deps: EgressDeps,
  log: EgressDeps['log'],
  deadline: AttemptDeadline,
): Promise<AttemptResult> {
  try {
    return await attemptSteps(env, d, remaining, deps, log, deadline);
  } catch (err) {
    if (!(err instanceof DeadlineError)) throw err;
    // A step that sends nothing outran the attempt's deadline: nothing was delivered.
    log.info({ reply: err.reply }, 'delivery attempt deadline reached');
    return {
      results: remaining.map((address) => ({ address, outcome: 'deferred', reply: err.reply, tls: 'none' })),
    };
  }
}

async function attemptSteps(
  env: Envelope,
  d: EnvelopeDelivery,
  remaining: string[],
  deps: EgressDeps,
  log: EgressDeps['log'],
  deadline: AttemptDeadline,
): Promise<AttemptResult> {
  const results: RecipientResult[] = [];
  const none = (address: string, outcome: Outcome, reply: string): RecipientResult => ({
    address,
    outcome,
    reply,
    tls: 'none',
  });

  // Nothing we send may carry CR, LF or NUL (command injection, SMTP smuggling).
  const heloName = deps.config.egress.heloName ?? deps.config.hostname;
  if (/[\r\n\0]/.test(heloName)) {
    log.error('egress EHLO name contains CR, LF or NUL: not sending; fix egress.heloName / hostname');
    return { results: remaining.map((a) => none(a, 'deferred', localReplies.badHeloName())) };
  }
  if (UNSENDABLE.test(env.mailFrom.address)) {
    const reply = localReplies.badSender('it contains CR, LF, NUL, angle brackets or edge spaces');
    return { results: remaining.map((a) => none(a, 'failed', reply)) };
  }
  const sendable: string[] = [];
  const unsendable = localReplies.badRecipient('it contains CR, LF, NUL, angle brackets or edge spaces');
  for (const a of remaining) {
    if (UNSENDABLE.test(a)) results.push(none(a, 'failed', unsendable));
    else sendable.push(a);
  }
  if (sendable.length === 0) return { results };

  let message: OutgoingMessage;
  try {
    message = await beforeDeadline(
      deadline,
      'loading the body',
      outgoingMessage(env, d.inlineBody, deps.bus),
    );
  } catch (err) {
    if (err instanceof DeadlineError) throw err;
    if (err instanceof HeaderAssemblyError) {
      return { disposition: { kind: 'dead', reason: `prepended headers cannot be written: ${err.message}` } };
    }
    log.error({ err }, 'message body could not be loaded: retrying later');
    return {
      disposition: {
        kind: 'retry',
        delayMs: retryDelayMs(deps.config.egress.retrySchedule, d.deliveryCount),
        reason: `body unavailable: ${(err as Error).message}`,
      },
    };
  }

  const plan = await beforeDeadline(
    deadline,
    'DNS',
    destinationFor(env.route!, deps.dns, { mxPort: deps.mxPort }),
  );
  if (plan.kind === 'unroutable') {
    const outcome: Outcome = plan.permanent ? 'failed' : 'deferred';
    return { results: [...results, ...sendable.map((a) => none(a, outcome, plan.reply))] };
  }

  const e = deps.config.egress;
  let clientCert: ClientCert | undefined;
  try {
    clientCert = clientCertFor(deps.config, env.route!);
  } catch (err) {
    const reply = localReplies.connectFailed((err as Error).message);
    return { results: [...results, ...sendable.map((a) => none(a, 'deferred', reply))] };
  }
  const sessionOptions: SessionOptions = {
    heloName,
    connectTimeoutMs: e.connectTimeout * 1000,
    greetingTimeoutMs: e.greetingTimeout * 1000,
    socketTimeoutMs: e.socketTimeout * 1000,
    // A next hop that wants our client certificate gets it over TLS only, never in cleartext.
    requireTls: e.requireTls || clientCert !== undefined,
    ignoreTlsErrors: e.ignoreTlsErrors,
    dnsTimeoutMs: deps.config.dns.timeout * 1000,
    clientCert,
  };
  const tlsPlan = await beforeDeadline(
    deadline,
    'TLS policy',
    destinationTls(env.route!, {
      defaults: { requireTls: sessionOptions.requireTls, ignoreTlsErrors: sessionOptions.ignoreTlsErrors },
      secureDns: deps.secureDns,
      mtaSts: deps.config.egress.mtaSts.enabled ? deps.mtaSts : undefined,
      ca: deps.tlsCa,
    }),
  );
  if (tlsPlan.kind === 'defer') {
    const report =
      env.route!.kind === 'mx'
        ? { type: 'tlsa' as const, domain: env.route!.domain, strings: [] }
        : undefined;
    recordTlsResult(
      deps.metrics,
      log,
      { policy: 'dane', result: tlsPlan.result, detail: tlsPlan.reply, report },
      deps.tlsRpt,
    );
    return { results: [...results, ...sendable.map((a) => none(a, 'deferred', tlsPlan.reply))] };
  }
  // REQUIRETLS or TLS-Required: No (RFC 8689) over the destination's policy: require-tls.ts.
  const requireTls = requireTlsApplies(env);
  const hostTls = messageTlsPlan(env, tlsPlan.tls, {
    defaults: { requireTls: sessionOptions.requireTls, ignoreTlsErrors: sessionOptions.ignoreTlsErrors },
    ca: deps.tlsCa,
    message,
  });
  const tx = { requireTls, dsn: dsnToPassOn(env) };
  let lastOpenError = localReplies.connectFailed('no candidate host');
  const openErrors: string[] = [];
  for (const candidate of plan.candidates) {
    let session: SmtpSession;
    let tlsOutcome: TlsOutcome;
    try {
      ({ session, tlsOutcome } = await beforeDeadline(
        deadline,
        `opening a session with ${candidate.label}`,
        openUnderPolicy(candidate, sessionOptions, hostTls, deps, log, requireTls),
        (late) => (deps.sessions ? deps.sessions.release(late.session, true) : late.session.close()),
      ));
    } catch (err) {
      if (err instanceof DeadlineError) throw err;
      lastOpenError = err instanceof SessionOpenError ? err.reply : localReplies.connectFailed(String(err));
      if (requireTls) lastOpenError = requireTlsOpenFailure(lastOpenError);
      openErrors.push(lastOpenError);
      log.info(
        { host: candidate.label, reply: lastOpenError },
        'could not open a session: trying the next host',
      );
      continue;
    }
    let clean = false;
    // At the deadline the connection is cut; the transaction settles with "connection lost".
    const cut = () =>
      session.abort(
        localReplies.attemptTimedOut(
          `transaction with ${candidate.label} after ${Math.round(deadline.ms / 1000)} s`,
        ),
      );
    deadline.signal.addEventListener('abort', cut, { once: true });
    try {
      const replies = await transact(session, env.mailFrom.address, sendable, message, tx);
      clean = replies.every((r) => r.code >= 200 && r.code < 300);
      const dsnPassedOn = tx.dsn !== undefined && session.offers('DSN');
      for (const r of replies) {
        results.push({
          address: r.address,
          outcome: outcomeOfCode(r.code),
          reply: r.reply,
          host: candidate.label,
          tls: tlsOutcome,
          dsnPassedOn,
        });
      }
    } finally {
      deadline.signal.removeEventListener('abort', cut);
      if (deps.sessions) deps.sessions.release(session, clean);
      else session.close();
    }
    return { results };
  }
  // Only REQUIRETLS makes a host's refusal final (5.7.10/5.7.30): when every host refused so, the message fails.
  const final = openErrors.length > 0 && openErrors.every((r) => replyCode(r) >= 500);
  return {
    results: [
      ...results,
      ...sendable.map((a) => ({
        ...unreached(a, plan.candidates, lastOpenError),
        ...(final ? { outcome: 'failed' as const } : {}),
      })),
    ],
  };
}

/**
 * Open a session with one candidate under its TLS policy (tls-policy.ts),
 * in a span carrying the policy and outcome; the result counts for TLS-RPT.
 */
async function openUnderPolicy(
  planned: Candidate,
  base: SessionOptions,
  plan: DestinationTls,
  deps: EgressDeps,
  log: EgressDeps['log'],
  requireTls = false,
): Promise<{ session: SmtpSession; tlsOutcome: TlsOutcome }> {
  return runInSpan('egress.session', { attributes: { 'server.address': planned.label } }, async (span) => {
    const decision = await plan.forHost(planned);
    // A DANE transport is reached at its DNSSEC-validated address (tls-policy.ts transportDane).
    const candidate = decision.kind === 'use' && decision.connect ? decision.connect : planned;
    const host = candidate.label;
    // TLS-RPT failure-details name the MX host and the address (RFC 8460 §4.4).
    const rpt = { report: decision.report, mxHost: candidate.servername, ip: candidate.host };
    if (decision.kind === 'skip') {
      span.setAttribute('sluice.tls.policy', decision.policy);
      recordTlsResult(
        deps.metrics,
        log,
        { policy: decision.policy, result: decision.result, host, detail: decision.reply, ...rpt },
        deps.tlsRpt,
      );
      if (decision.fallback && (await decision.fallback.allowed())) {
        return openOpportunistic(candidate, base, decision.fallback.tls, deps, log, decision.reply);
      }
      throw new SessionOpenError(decision.reply);
    }
    const { tls } = decision;
    span.setAttribute('sluice.tls.policy', tls.policy);
    let session: SmtpSession;
    try {
      const options: SessionOptions = {
        ...base,
        ...tls.session,
        requireTls: base.requireTls || tls.session.requireTls,
        // A pooled session is reused only under the same TLS policy (session-pool.ts key).
        policyKey: tls.policyKey ?? tls.policy,
      };
      session = await (deps.sessions?.acquire(candidate, options) ?? SmtpSession.open(candidate, options));
    } catch (err) {
      if (tls.policy !== 'none' && err instanceof SessionOpenError) {
        const result = failureResultOf(err.reply, tls.policy);
        recordTlsResult(
          deps.metrics,
          log,
          { policy: tls.policy, result, host, detail: err.reply, ...rpt },
          deps.tlsRpt,
        );
      }
      if (!(err instanceof SessionOpenError && tls.fallback && (await tls.fallback.allowed()))) throw err;
      return openOpportunistic(candidate, base, tls.fallback.tls, deps, log, err.reply);
    }
    if (requireTls && !(session.tls === 'tls' && session.offers('REQUIRETLS'))) {
      // RFC 8689 §4.2.1 step 5: the next hop must offer REQUIRETLS; the session may carry other mail.
      if (deps.sessions) deps.sessions.release(session, true);
      else session.close();
      throw new SessionOpenError(localReplies.requireTlsUnsupported(host));
    }
    const tlsOutcome: TlsOutcome = session.tls === 'tls' ? tls.outcome : 'none';
    span.setAttribute('sluice.tls.outcome', tlsOutcome);
    recordTlsResult(
      deps.metrics,
      log,
      {
        policy: tls.policy,
        result:
          tls.note && tls.policy === 'mta-sts' && / does not match/.test(tls.note)
            ? 'validation-failure'
            : 'success',
        host,
        detail: tls.note,
        ...rpt,
      },
      deps.tlsRpt,
    );
    return { session, tlsOutcome };
  });
}

/** TLS-Required: No (RFC 8689 §4.2.2): the policy failed, the sender allows this host without it. */
async function openOpportunistic(
  candidate: Candidate,
  base: SessionOptions,
  tls: HostTls,
  deps: EgressDeps,
  log: EgressDeps['log'],
  reply: string,
): Promise<{ session: SmtpSession; tlsOutcome: TlsOutcome }> {
  log.info(
    { host: candidate.label, reply },
    'TLS policy failed; TLS-Required: No: delivering opportunistically',
  );
  const options: SessionOptions = { ...base, ...tls.session, policyKey: 'none' };
  const session = await (deps.sessions?.acquire(candidate, options) ?? SmtpSession.open(candidate, options));
  return { session, tlsOutcome: session.tls === 'tls' ? 'tls' : 'none' };
}

function unreached(address: string, candidates: Candidate[], reply: string): RecipientResult {
  return { address, outcome: 'deferred', reply, host: candidates.at(-1)?.label, tls: 'none' };
}

/** The recipients in transactions of at most RECIPIENTS_PER_TRANSACTION on one session. */
async function transact(
  session: SmtpSession,
  from: string,
  to: string[],
  message: OutgoingMessage,
  extra: Pick<Transaction, 'requireTls' | 'dsn'> = {},
): Promise<RecipientReply[]> {
  const eightBit = message.eightBit;
  const out: RecipientReply[] = [];
  for (let i = 0; i < to.length; i += RECIPIENTS_PER_TRANSACTION) {
    const batch = to.slice(i, i + RECIPIENTS_PER_TRANSACTION);
    const replies = await session.send({ from, to: batch, message, eightBit, ...extra });
    out.push(...replies);
    const more = i + RECIPIENTS_PER_TRANSACTION < to.length;
    if (more && replies.some((r) => replyCode(r.reply) < 200 || replyCode(r.reply) >= 300))
      await session.reset();
  }
  return out;
}

/**
 * Recipients final in this process' memory but missing from the ledger (the
 * server lost the write): not sent again, and their entries written again.
 */
async function restoreLostEntries(
  queueId: string,
  wanted: string[],
  ledger: Map<string, LedgerEntry | null>,
  d: EnvelopeDelivery,
  deps: EgressDeps,
  held: HeldOutcomes,
  log: EgressDeps['log'],
): Promise<Set<string>> {
  const restored = new Set<string>();
  for (const a of wanted) {
    if (ledger.get(a) != null) continue;
    const entry = held.recall(ledgerKey(queueId, a));
    if (!entry) continue;
    restored.add(a);
    deps.metrics.ledgerRestored.inc();
    log.warn(
      { recipient: deps.redact.address(a), status: entry.status },
      'ledger entry lost by the server: restored from this process, not sent again',
    );
    await deps.bus.ledgerPut(ledgerKey(queueId, a), entry, { hold: ledgerHold(d, log) });
  }
  return restored;
}

function ledgerHold(d: EnvelopeDelivery, log: EgressDeps['log']): LedgerHold {
  return {
    working: () => d.working(),
    signal: d.hold?.signal,
    onRetry: (err: unknown, attempt: number) => {
      if (attempt === 1 || attempt % 20 === 0) {
        log.warn({ err, attempt }, 'ledger write failed after delivery: holding the outcome and retrying');
      }
    },
  };
}

/**
 * Record the attempt (metrics and timeline first, so every delivery shows even
 * if the process dies next), then write the final outcomes to the ledger,
 * held until durable.
 */
async function finish(
  env: Envelope,
  d: EnvelopeDelivery,
  results: RecipientResult[],
  nextAttemptAt: string | undefined,
  deps: EgressDeps,
  held: HeldOutcomes,
  log: EgressDeps['log'],
): Promise<void> {
  const at = new Date((deps.now ?? Date.now)()).toISOString();
  const finals = results
    .filter((r) => r.outcome !== 'deferred')
    .map((r) => {
      const entry: LedgerEntry = {
        status: r.outcome === 'delivered' ? 'delivered' : 'failed',
        at,
        reply: r.reply,
      };
      // Remembered first: if the server loses the write, a redelivery here still finds it.
      held.remember(ledgerKey(env.id, r.address), entry);
      return { r, entry };
    });
  await record(env, d, results, nextAttemptAt, deps, log);
  const hold = ledgerHold(d, log);
  await Promise.all(
    finals.map(async ({ r, entry }) => {
      const earlier = await deps.bus.ledgerPut(ledgerKey(env.id, r.address), entry, { hold });
      if (earlier?.status === 'delivered' && r.outcome === 'delivered') {
        // Another attempt (a replica whose ack deadline ran out on us) delivered it first.
        deps.metrics.deliveryRepeats.inc({ reason: 'concurrent-attempt' });
        log.warn(
          { recipient: deps.redact.address(r.address), earlier: earlier.at },
          'recipient was delivered by another attempt too (a duplicate copy)',
        );
      }
    }),
  );
}

/** Timeline events, metrics and logs for this attempt. */
async function record(
  env: Envelope,
  d: EnvelopeDelivery,
  results: RecipientResult[],
  nextAttemptAt: string | undefined,
  deps: EgressDeps,
  log: EgressDeps['log'],
): Promise<void> {
  const now = deps.now ?? Date.now;
  const at = new Date(now());
  for (const r of results) {
    const recipient = deps.redact.address(r.address);
    const reply = redactIn(r.reply, r.address, recipient);
    deps.metrics.deliveries.inc({ outcome: r.outcome });
    if (r.outcome === 'delivered') {
      deps.metrics.deliveryLatency.observe((now() - Date.parse(env.receivedAt)) / 1000);
    }
    if (r.outcome === 'failed') {
      log.warn({ recipient, reply, host: r.host }, 'delivery failed permanently');
    } else {
      log.info({ recipient, outcome: r.outcome, reply, host: r.host, tls: r.tls }, 'delivery attempt');
    }
    await deps.bus.recordEvent({
      ...eventBase({
        envelope: env,
        stage: 'egress',
        instance: deps.instance,
        traceId: activeTraceFields().trace_id,
        at,
      }),
      kind: 'delivery',
      recipient,
      outcome: r.outcome,
      host: r.host,
      reply,
      attempt: d.deliveryCount,
      tls: r.tls,
      nextAttemptAt: r.outcome === 'deferred' ? nextAttemptAt : undefined,
    });
  }
}

/** Remote replies often quote the address; the privacy setting applies to it there too. */
function redactIn(reply: string, address: string, shown: string): string {
  if (shown === address || address.length === 0) return reply;
  const escaped = address.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return reply.replace(new RegExp(escaped, 'gi'), shown);
}
