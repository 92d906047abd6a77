/**
 * The filter's policy from the validated config (filter.*, domains.*): rule
 * weights, action thresholds, anti-spoofing mode, DNS lists, greylisting and
 * the configured engines. Built once per process; the DNS-list cache lives
 * as long as the process.
 */
import type { BusClient } from '@sluice/bus';
import type { ServiceContext } from '@sluice/runtime';
import { ClamdEngine } from './engines/clamd.ts';
import type { ConfiguredEngine } from './engines/engine.ts';
import { RspamdEngine } from './engines/rspamd.ts';
import { DnsListCache } from './rules/dns-lists.ts';
import type { FilterPolicy } from './verdict.ts';

const SECOND = 1000;

export function filterPolicyFrom(config: ServiceContext['config'], bus: BusClient): FilterPolicy {
  const f = config.filter;
  const engines: ConfiguredEngine[] = [];
  if (f.clamd) {
    engines.push({
      engine: new ClamdEngine({ host: f.clamd.host, port: f.clamd.port }),
      timeoutMs: f.clamd.timeout * SECOND,
      onFailure: f.clamd.onFailure,
    });
  }
  if (f.rspamd) {
    engines.push({
      engine: new RspamdEngine(f.rspamd.url, f.weights),
      timeoutMs: f.rspamd.timeout * SECOND,
      onFailure: f.rspamd.onFailure,
    });
  }
  const lists = f.dnsbl;
  return {
    weights: f.weights,
    thresholds: f.actions,
    antiSpoofing: f.antiSpoofing.action,
    ourDomains: new Set([config.domains.primary, ...config.domains.aliases].map((d) => d.toLowerCase())),
    dnsLists:
      lists.ipZones.length + lists.uriZones.length > 0
        ? {
            options: {
              ipZones: lists.ipZones,
              uriZones: lists.uriZones,
              timeoutMs: lists.timeout * SECOND,
              cacheMs: lists.cacheSeconds * SECOND,
              maxUris: lists.maxUris,
            },
            cache: new DnsListCache(lists.cacheSeconds * SECOND),
          }
        : undefined,
    greylist: f.greylist.enabled
      ? {
          options: {
            delayMs: f.greylist.delay * SECOND,
            retryWindowMs: f.greylist.retryWindow * SECOND,
            goodSenders: f.greylist.goodSenders,
            // Restart a passed triplet's TTL at most ten times per TTL.
            refreshAfterMs: (f.greylist.ttl * SECOND) / 10,
          },
          store: bus,
        }
      : undefined,
    engines,
  };
}
