/**
 * The egress service: consumes the deliver stream (consumers.egress) with
 * egress.concurrency parts in flight, and delivers each (deliver.ts) by SMTP
 * or LMTP to its route's next hop. It holds no inbound port; it is the only
 * service that opens outbound SMTP connections, and it keeps them open per
 * destination for the next message (session-pool.ts: egress.destinationConcurrency,
 * egress.sessionIdleTimeout).
 *
 * Every part goes through the delivery queue (queued-delivery.ts): per-destination
 * concurrency, rate and shared backoff (destination-scheduler.ts,
 * destination-states.ts), the shared index of waiting parts (queue-index.ts) and
 * the queue operations served to `sluice queue` (queue-control.ts).
 *
 * createEgressService takes the seams tests need (a DNS lookup, the MX port);
 * `egressService` is the production definition with the configured DNS
 * servers and port 25.
 */

import { createSecureDns } from '@sluice/dns';
import { consumers } from '@sluice/proto';
import type { RunningService, ServiceContext, ServiceDefinition } from '@sluice/runtime';
import { ConcurrencyShares, type ShareRecord } from './concurrency-shares.ts';
import { createDnsLookup, type DnsLookup } from './destination.ts';
import { DestinationScheduler } from './destination-scheduler.ts';
import { type DestinationState, DestinationStates } from './destination-states.ts';
import { caFromFile, createMtaStsSource } from './mta-sts-source.ts';
import { type PaceRecord, SharedPaceLeases } from './pace-leases.ts';
import {
  POSTPONED_KEY_PREFIX,
  PostponedParts,
  type PostponedSnapshot,
  publishPostponed,
} from './postponed-parts.ts';
import { serveQueueControl } from './queue-control.ts';
import { limitsFor } from './queue-destination.ts';
import { type QueueEntry, QueueIndex } from './queue-index.ts';
import { type DeliveryQueue, deliverQueued } from './queued-delivery.ts';
import { SessionPool } from './session-pool.ts';
import { startTlsRpt } from './tls-rpt-sender.ts';
import { TlsRptRecorder } from './tls-rpt-store.ts';

export interface EgressServiceOptions {
  /** DNS for MX lookups (default: node:dns with config.dns). */
  dns?: DnsLookup;
  /** Port of MX hosts (default 25). */
  mxPort?: number;
}

export function createEgressService(opts: EgressServiceOptions = {}): ServiceDefinition {
  return {
    name: 'egress',
    async start(ctx: ServiceContext): Promise<RunningService> {
      const heloName = ctx.config.egress.heloName ?? ctx.config.hostname;
      if (/[\r\n\0]/.test(heloName)) {
        throw new Error(
          'egress.heloName (or hostname) contains CR, LF or NUL: it would inject SMTP commands',
        );
      }
      const dns = opts.dns ?? createDnsLookup(ctx.config.dns);
      const resolver = ctx.config.egress.dnsResolver;
      const secureDns = resolver
        ? createSecureDns({ resolver, timeoutMs: ctx.config.dns.timeout * 1000 })
        : undefined;
      const sts = ctx.config.egress.mtaSts;
      const tlsCa = caFromFile(sts.caFile);
      const mtaSts =
        secureDns && sts.enabled
          ? createMtaStsSource({
              dns: secureDns,
              store: ctx.bus,
              ca: tlsCa,
              port: sts.policyPort,
              fetchTimeoutMs: sts.fetchTimeout * 1000,
              log: ctx.log,
            })
          : undefined;
      if (!secureDns) {
        ctx.log.warn('egress.dnsResolver is not set: no DANE and no MTA-STS, outbound TLS is opportunistic');
      }
      // TLS-RPT (RFC 8460): counted per policy domain, the daily report sent by one replica.
      const tlsRpt =
        ctx.config.egress.tlsReports.enabled && secureDns ? new TlsRptRecorder(ctx.bus) : undefined;
      const stopTlsRpt =
        tlsRpt && secureDns
          ? startTlsRpt(tlsRpt, { ...ctx, bus: ctx.bus, secureDns, ca: tlsCa })
          : async () => {};
      const sessions = new SessionPool({
        maxPerDestination: ctx.config.egress.destinationConcurrency,
        idleTimeoutMs: ctx.config.egress.sessionIdleTimeout * 1000,
      });
      const states = new DestinationStates(
        ctx.bus.sharedTable<DestinationState>('egressDestinations'),
        ctx.config.egress.retrySchedule,
      );
      await states.start();
      const index = new QueueIndex(ctx.bus.sharedTable<QueueEntry>('egressQueue'));
      const postponed = new PostponedParts();
      const snapshots = ctx.bus.sharedTable<PostponedSnapshot>('egressDestinations');
      const stopPostponed = publishPostponed(postponed, snapshots, ctx.instance, (err) =>
        ctx.log.warn({ err }, 'could not publish the postponed-parts snapshot'),
      );
      // A rule's maxConcurrency holds across replicas: each uses a share, renewed in the shared bucket.
      const shares = new ConcurrencyShares({
        table: ctx.bus.sharedTable<ShareRecord>('egressDestinations'),
        instance: ctx.instance,
      });
      const scheduler = new DestinationScheduler({
        limits: (name) => limitsFor(name, ctx.config.egress),
        states,
        // Rates hold across replicas: start times leased in slices from the shared bucket (decision 0042).
        pace: new SharedPaceLeases(ctx.bus.sharedTable<PaceRecord>('egressDestinations')),
        shares,
      });
      shares.start(
        (name) => scheduler.inFlight(name),
        (err) => ctx.log.warn({ err }, 'could not renew the destination concurrency shares'),
      );
      const queue: DeliveryQueue = { index, postponed, states, scheduler };
      const control = serveQueueControl({
        bus: ctx.bus,
        index,
        states,
        log: ctx.log,
        postponed: async () =>
          (await snapshots.entries())
            .filter((r) => r.key.startsWith(POSTPONED_KEY_PREFIX))
            .map((r) => r.value),
      });
      const consumer = ctx.bus.consumeEnvelopes(
        consumers.egress,
        { concurrency: ctx.config.egress.concurrency },
        async (d) => {
          const t0 = performance.now();
          const disposition = await deliverQueued(
            d,
            { ...ctx, dns, secureDns, mtaSts, tlsCa, tlsRpt, mxPort: opts.mxPort, sessions },
            queue,
          );
          if (disposition.kind === 'postpone') return disposition; // not an attempt: not measured
          ctx.metrics.stageProcessed.inc({ stage: 'egress', outcome: disposition.kind });
          ctx.metrics.stageDuration.observe({ stage: 'egress' }, (performance.now() - t0) / 1000);
          if (disposition.kind === 'dead') ctx.metrics.deadLettered.inc({ stage: 'egress' });
          return disposition;
        },
      );
      return {
        name: 'egress',
        async stop() {
          await control.stop();
          await consumer.stop();
          await stopPostponed();
          await shares
            .stop()
            .catch((err) => ctx.log.warn({ err }, 'could not give back the concurrency shares'));
          states.stop();
          sessions.close(); // QUIT the idle sessions
          await stopTlsRpt(); // the last counts into the shared store
        },
        info: () => ({
          concurrency: ctx.config.egress.concurrency,
          heloName,
          destinationConcurrency: ctx.config.egress.destinationConcurrency,
        }),
      };
    },
  };
}

export const egressService: ServiceDefinition = createEgressService();
