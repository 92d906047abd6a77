/**
 * The client-autoconfiguration endpoint's instrument (services/submission
 * autoconfig): requests by document and HTTP status, so an operator sees
 * whether clients find the documents (200), ask for foreign domains (404) or
 * send garbage (400, 413). Registered on the process registry on first use,
 * once per registry; never labelled by address or IP.
 */
import { Counter, type Registry } from 'prom-client';

export interface AutoconfigMetrics {
  /** Requests by document (mozilla, autodiscover, autodiscover-json, mobileconfig, none) and status code. */
  readonly requests: Counter<'document' | 'status'>;
}

const registered = new WeakMap<Registry, AutoconfigMetrics>();

export function autoconfigMetrics(registry: Registry): AutoconfigMetrics {
  const existing = registered.get(registry);
  if (existing) return existing;
  const m: AutoconfigMetrics = {
    requests: new Counter({
      name: 'sluice_autoconfig_requests_total',
      help: 'Client autoconfiguration requests by document and HTTP status.',
      labelNames: ['document', 'status'],
      registers: [registry],
    }),
  };
  registered.set(registry, m);
  return m;
}
