/**
 * The resolver service. Two jobs on one routing table:
 *
 *   - the RCPT-time lookup (subjects.resolverLookup, queue group
 *     queueGroups.resolver): answers a LookupReply (lookup.ts) to the ingress
 *     and `sluice lookup`;
 *   - the resolve stage (consumers.resolver): expands every recipient of an
 *     accepted envelope, splits it into one part per route (split.ts) and
 *     publishes each part to subjects.rewrite with the deterministic
 *     Nats-Msg-Id dedupIds.rewrite(partId), all BEFORE the input is acked, so
 *     a crash in between is a redelivery whose republishes are dropped as
 *     duplicates (part ids name the part's content: split.ts).
 *
 * A recipient branch that resolves to nothing after acceptance (the config
 * changed since RCPT: now unknown, or an alias loop or too deep a chain) is
 * not lost and not bounced: it is dead-lettered as an envelope carrying just
 * that recipient (status failed, the reason in lastReply and in the dead
 * letter's reason header), which an operator can fix and replay into the
 * resolve stream. Its dead letter has a deterministic Nats-Msg-Id, so a
 * redelivery does not store it twice. DSNs for such recipients are a later
 * issue.
 *
 * The table comes from RoutingState: the config file (reloaded on change when
 * routing.reload, config-reload.ts) and, with routing.ldap, the LDAP snapshot
 * kept by ldap-keeper.ts, which also answers `sluice ldap refresh`
 * (subjects.resolverLdapRefresh). An envelope whose recipient the directory
 * would decide while its snapshot is missing or too old is retried later,
 * never dead-lettered (ldap-gate.ts).
 *
 * Trust: reads configuration and the LDAP directory; publishes only to the rewrite stream, the
 * dead-letter stream and the timeline. Addresses in events and logs go
 * through the privacy setting (ctx.redact).
 */
import type { Disposition, EnvelopeDelivery } from '@sluice/bus';
import { activeTraceFields } from '@sluice/log';
import {
  consumers,
  dedupIds,
  type Envelope,
  encodeEnvelope,
  eventBase,
  headerNames,
  type LdapRefreshReply,
  type LookupReply,
  type LookupRequest,
  ldapRefreshRequestSchema,
  lookupRequestSchema,
  queueGroups,
  type Recipient,
  subjects,
} from '@sluice/proto';
import type { RunningService, ServiceContext, ServiceDefinition } from '@sluice/runtime';
import { routingSourceMetrics } from '@sluice/telemetry';
import { watchConfigFile } from './config-reload.ts';
import type { ExpansionError } from './expand.ts';
import { LdapKeeper } from './ldap-keeper.ts';
import { liveTrail } from './ldap-live.ts';
import { lookupAddress } from './lookup.ts';
import { routeKey } from './route.ts';
import { RoutingState } from './routing-state.ts';
import type { RoutingTable } from './routing-table.ts';
import { type FailedBranch, failedBranches, resolveRecipients, splitByRoute } from './split.ts';
import { SrsBounceLimiter } from './srs-bounce-limit.ts';

const encoder = new TextEncoder();
/**
 * How long an envelope waits when the LDAP snapshot cannot answer: until the next refresh
 * (routing.ldap.refreshInterval), at most a minute. With bus.maxDeliver (50) that keeps it
 * queued for up to ~50 minutes of outage past the staleness bound; after that it is
 * dead-lettered with the reason (replayable), never dropped.
 */
function unavailableRetryMs(table: RoutingTable): number {
  return Math.min(60_000, Math.max(1000, table.ldap?.refreshIntervalMs ?? 60_000));
}
const decoder = new TextDecoder();

export type ResolverDeps = Pick<ServiceContext, 'bus' | 'log' | 'metrics' | 'redact' | 'instance'> & {
  table: RoutingTable;
  now?: () => Date;
};

/** Parse one lookup request (JSON LookupRequest). Throws on a malformed request. */
export function parseLookupRequest(data: Uint8Array): LookupRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(data));
  } catch {
    throw new Error('lookup request is not JSON');
  }
  const req = lookupRequestSchema.safeParse(raw);
  if (!req.success) throw new Error(`invalid lookup request: ${req.error.issues[0]?.message ?? 'unknown'}`);
  return req.data;
}

/** Answer one lookup request (JSON LookupRequest -> LookupReply). Throws on a malformed request. */
export function answerLookup(table: RoutingTable, data: Uint8Array): LookupReply {
  const req = parseLookupRequest(data);
  return lookupAddress(table, req.address, { mailFrom: req.mailFrom });
}

/** The resolve stage's handler for one accepted envelope. */
export async function resolveEnvelope(d: EnvelopeDelivery, deps: ResolverDeps): Promise<Disposition> {
  const env = d.envelope;
  const now = deps.now ?? (() => new Date());
  const hop = { stage: 'resolver', instance: deps.instance, at: now().toISOString() };
  const log = deps.log.child({ queueId: env.id });

  const resolutions = resolveRecipients(deps.table, env);
  // The LDAP directory would decide a recipient and its snapshot is missing or too old: keep the
  // whole envelope queued and ask again later (nothing published, nothing dead-lettered).
  const unavailable = resolutions.flatMap((r) => r.expansion.errors).find((e) => e.kind === 'unavailable');
  if (unavailable) {
    log.warn({ reason: unavailable.message }, 'routing directory unavailable: resolve retried later');
    return { kind: 'retry', delayMs: unavailableRetryMs(deps.table), reason: unavailable.message };
  }
  const parts = splitByRoute(env, resolutions, hop);
  const failed = failedBranches(resolutions);
  const eventHead = () =>
    eventBase({
      envelope: env,
      stage: 'resolver',
      instance: deps.instance,
      traceId: activeTraceFields().trace_id,
      at: now(),
    });

  // One 'resolved' event per accepted recipient, where it goes and why; recorded before the
  // parts are published so the timeline reads in order (a redelivery may record it twice).
  for (const { recipient, expansion, targets } of resolutions) {
    const routes = [...new Set(targets.map((t) => routeKey(t.route)))];
    await deps.bus.recordEvent({
      ...eventHead(),
      kind: 'resolved',
      recipient: deps.redact.address(recipient.address),
      targets: targets.map((t) => deps.redact.address(t.address)),
      route: routes.length > 0 ? routes.join(', ') : 'none',
      source: expansion.sources.length > 0 ? expansion.sources.join(', ') : 'address itself',
    });
  }
  // The parts are independent: published together, their PubAcks awaited together (one round
  // trip). A full rewrite stream holds this message until it has room (backpressure), never a
  // dead letter.
  await Promise.all(
    parts.map((part) =>
      deps.bus.publishEnvelope(subjects.rewrite, part, d.inlineBody, {
        msgId: dedupIds.rewrite(part.partId!),
        whileFull: d.hold,
      }),
    ),
  );
  for (const branch of failed) {
    const reason = deadReason(branch.error);
    const dead = deadEnvelope(env, branch, reason, hop);
    const msgId = dedupIds.resolverDead(env.id, {
      recipient: branch.recipient.address,
      at: branch.error.address,
      kind: branch.error.kind,
    });
    await deps.bus.deadLetter('resolver', reason, encodeEnvelope(dead, d.inlineBody), {
      [headerNames.msgId]: msgId,
    });
    deps.metrics.deadLettered.inc({ stage: 'resolver' });
    const shown = deps.redact.address(branch.error.address);
    const logFields = {
      recipient: deps.redact.address(branch.recipient.address),
      at: shown,
      kind: branch.error.kind,
    };
    if (branch.error.kind === 'unknown')
      log.warn(logFields, 'recipient unknown after acceptance: dead-lettered');
    else log.error(logFields, 'recipient expansion failed (fix the routing config): dead-lettered');
    await deps.bus.recordEvent({
      ...eventHead(),
      kind: 'dead-lettered',
      reason: `${errorLabel(branch.error)} at ${shown}`,
    });
  }

  log.info(
    {
      parts: parts.map((p) => ({ partId: p.partId, recipients: p.recipients.length })),
      deadLettered: failed.length,
    },
    'resolved',
  );
  return { kind: 'ack' };
}

function errorLabel(e: ExpansionError): string {
  switch (e.kind) {
    case 'unknown':
      return 'unknown recipient after acceptance';
    case 'loop':
      return 'alias loop after acceptance';
    case 'depth':
      return 'alias chain deeper than routing.maxDepth after acceptance';
    case 'invalid':
      return 'invalid recipient address';
    case 'rejected':
      return 'recipient refused by routing.reject after acceptance';
    case 'unavailable':
      return 'routing directory unavailable';
  }
}

function deadReason(e: ExpansionError): string {
  return `${errorLabel(e)}: ${e.message}`;
}

/** The envelope that carries one failed branch to the dead-letter stream (replayable into resolve). */
function deadEnvelope(
  env: Envelope,
  branch: FailedBranch,
  reason: string,
  hop: Envelope['hops'][number],
): Envelope {
  // Spread, so fields a newer version added to the recipient are kept for the replay.
  const { via: _via, ...kept } = branch.recipient;
  const recipient: Recipient = {
    ...kept,
    address: branch.error.address,
    status: 'failed',
    lastReply: reason,
  };
  if (branch.error.via.length > 0) recipient.via = branch.error.via;
  const { partId: _partId, ...rest } = env;
  return { ...rest, recipients: [recipient], hops: [...env.hops, hop] };
}

/** The delivery, with every backpressure wait counted in the stage's metric. */
function countingBackpressure(d: EnvelopeDelivery, ctx: ServiceContext, stage: string): EnvelopeDelivery {
  if (!d.hold) return d;
  return { ...d, hold: { ...d.hold, onFull: () => ctx.metrics.backpressureWaits.inc({ stage }) } };
}

export function createResolverService(): ServiceDefinition {
  return {
    name: 'resolver',
    async start(ctx: ServiceContext): Promise<RunningService> {
      const state = new RoutingState(ctx.config);
      const sourceMetrics = routingSourceMetrics(ctx.metrics.registry);
      const concurrency = ctx.config.resolver.concurrency;
      const ldapCfg = ctx.config.routing.ldap;
      // Per replica, kept over config reloads (srs-bounce-limit.ts).
      const srsBounceLimiter = new SrsBounceLimiter(ctx.config.srs.bounceLimit);
      const keeper = ldapCfg
        ? new LdapKeeper({
            bus: ctx.bus,
            log: ctx.log.child({ source: 'ldap' }),
            metrics: sourceMetrics,
            cfg: ldapCfg,
            directory: { domains: [state.table.primary, ...state.table.aliasDomains] },
            onSnapshot: (s) => state.setSnapshot(s),
          })
        : undefined;
      await keeper?.start();
      const stopWatch =
        ctx.configFile && ctx.config.routing.reload
          ? watchConfigFile({
              file: ctx.configFile,
              onConfig: (config) => {
                state.setConfig(config);
                sourceMetrics.configReloads.inc({ outcome: 'applied' });
                ctx.log.info(
                  { file: ctx.configFile, rules: state.table.rules.size },
                  'routing config reloaded',
                );
              },
              onRefused: (reason) => {
                sourceMetrics.configReloads.inc({ outcome: 'refused' });
                ctx.log.error(
                  { file: ctx.configFile, reason },
                  'changed config refused: the previous routing keeps serving',
                );
              },
            })
          : undefined;
      const rpc = ctx.bus.serve(
        subjects.resolverLookup,
        queueGroups.resolver,
        { concurrency },
        async (req) => {
          const table = state.table;
          const request = parseLookupRequest(req.data);
          const reply = lookupAddress(table, request.address, {
            mailFrom: request.mailFrom,
            srsBounceLimiter,
          });
          if (ldapCfg && request.live) {
            const directory = { domains: [table.primary, ...table.aliasDomains] };
            reply.trail.push(...(await liveTrail(ldapCfg, directory, table, request.address)));
          }
          if (reply.result === 'tempfail') {
            // A broken alias (loop, too deep, leads nowhere), or the directory cannot answer now.
            ctx.log.warn({ reason: reply.reason, trail: reply.trail }, 'lookup tempfails');
          }
          return encoder.encode(JSON.stringify(reply));
        },
      );
      const refreshRpc = ctx.bus.serve(
        subjects.resolverLdapRefresh,
        queueGroups.resolver,
        { concurrency: 1 },
        async (req) => {
          const parsed = ldapRefreshRequestSchema.safeParse(JSON.parse(decoder.decode(req.data)));
          if (!parsed.success) throw new Error('invalid ldap refresh request');
          const reply: LdapRefreshReply = keeper
            ? await keeper.refresh(parsed.data.force)
            : { v: 1, outcome: 'disabled', refused: [], message: 'routing.ldap is not configured' };
          return encoder.encode(JSON.stringify(reply));
        },
      );
      const consumer = ctx.bus.consumeEnvelopes(consumers.resolver, { concurrency }, async (d) => {
        const t0 = performance.now();
        const disposition = await resolveEnvelope(countingBackpressure(d, ctx, 'resolver'), {
          ...ctx,
          table: state.table,
        });
        ctx.metrics.stageProcessed.inc({ stage: 'resolver', outcome: disposition.kind });
        ctx.metrics.stageDuration.observe({ stage: 'resolver' }, (performance.now() - t0) / 1000);
        return disposition;
      });
      return {
        name: 'resolver',
        async stop() {
          stopWatch?.();
          keeper?.stop();
          await consumer.stop();
          await refreshRpc.stop();
          await rpc.stop();
        },
        info: () => ({
          primary: state.table.primary,
          aliasDomains: [...state.table.aliasDomains],
          rules: state.table.rules.size,
          transports: [...state.table.transports.keys()],
          ldapSnapshot: keeper?.snapshot?.version,
        }),
      };
    },
  };
}

export const resolverService: ServiceDefinition = createResolverService();
