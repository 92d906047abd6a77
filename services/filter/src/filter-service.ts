/**
 * The filter service: answers before-queue verdict requests from the ingress
 * on subjects.filterVerdict in the queue group queueGroups.filter, so
 * replicas share the load and each request is answered once.
 *
 * TRUST: reads message bodies from untrusted senders and DNS answers from
 * untrusted zones; writes nothing but its reply and timeline events. It never
 * changes the body: what it wants added (Authentication-Results) goes back as
 * prepend headers for the ingress to put on the envelope.
 *
 * STANDARDS: RFC 7208 (SPF), RFC 6376 (DKIM), RFC 9989 (DMARC), RFC 8617
 * (ARC), RFC 8601 (Authentication-Results), RFC 5782 (DNS lists), RFC 6647
 * (greylisting). Policy: docs/filter.md.
 */
import { queueGroups, subjects } from '@sluice/proto';
import type { RunningService, ServiceContext, ServiceDefinition } from '@sluice/runtime';
import { createDnsResolver } from './dns-resolver.ts';
import { filterPolicyFrom } from './policy.ts';
import { handleVerdictRequest } from './verdict-handler.ts';

/** An authserv-id is written unquoted: it must be a host name (RFC 8601 §2.5 suggests one). */
const AUTHSERV_ID = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** The authserv-id: filter.authservId, else our host name. Throws with the key to fix. */
export function authservIdFrom(config: ServiceContext['config']): string {
  const id = config.filter.authservId ?? config.hostname.replace(/\.$/, '');
  if (!AUTHSERV_ID.test(id) || id.length > 253) {
    throw new Error(
      `filter.authservId ${JSON.stringify(id)} is not a host name (RFC 8601 §2.5): set a DNS name`,
    );
  }
  return id.toLowerCase();
}

export const filterService: ServiceDefinition = {
  name: 'filter',
  async start(ctx: ServiceContext): Promise<RunningService> {
    const authservId = authservIdFrom(ctx.config);
    const resolver = createDnsResolver({
      servers: ctx.config.dns.servers,
      timeoutSeconds: ctx.config.dns.timeout,
      cacheMaxTtlSeconds: ctx.config.dns.cacheMaxTtl,
      onLookup: (answer) => ctx.metrics.filterDnsLookups.inc({ answer }),
    });
    const deps = {
      authservId,
      resolver,
      policy: filterPolicyFrom(ctx.config, ctx.bus),
      // SPF may take up to 10 lookups (RFC 7208 §4.6.4); keep it well inside the ingress' wait.
      spfTimeLimitMs: (ctx.config.ingress.filterTimeout * 1000) / 2,
      bus: ctx.bus,
      log: ctx.log,
      metrics: ctx.metrics,
      instance: ctx.instance,
    };
    const concurrency = ctx.config.filter.concurrency;
    // Bounded wait: a saturated replica answers busy at once and the ingress asks again (docs/filter.md).
    const maxQueued = ctx.config.filter.maxQueued ?? 2 * concurrency;
    const server = ctx.bus.serve(
      subjects.filterVerdict,
      queueGroups.filter,
      {
        concurrency,
        maxQueued,
        onShed: () => ctx.metrics.filterShed.inc(),
        onQueueLength: (waiting) => ctx.metrics.filterWaiting.set(waiting),
      },
      (req) => handleVerdictRequest(req, deps),
    );
    return {
      name: 'filter',
      stop: () => server.stop(),
      info: () => ({ authservId, concurrency, maxQueued, dnsServers: ctx.config.dns.servers }),
    };
  },
};
