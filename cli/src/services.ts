/**
 * The services `sluice run` knows, by name, in pipeline order. Adding a
 * service means one line here. The submission service starts only when the
 * config has a `submission:` section (otherwise it does nothing, and its
 * code is not even loaded: @sluice/submission/definition).
 */
import { egressService } from '@sluice/egress';
import { filterService } from '@sluice/filter';
import { ingressService } from '@sluice/ingress';
import { resolverService } from '@sluice/resolver';
import { rewriterService } from '@sluice/rewriter';
import type { ServiceDefinition } from '@sluice/runtime';
import { submissionService } from '@sluice/submission/definition';

export const allServices: ServiceDefinition[] = [
  ingressService,
  submissionService,
  filterService,
  resolverService,
  rewriterService,
  egressService,
];

/** Resolve service names from the command line; throws with the valid names on a typo. */
export function selectServices(names: string[]): ServiceDefinition[] {
  if (names.length === 0) return allServices;
  const known = new Map(allServices.map((s) => [s.name as string, s]));
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new Error(`unknown service ${unknown.join(', ')}: choose from ${[...known.keys()].join(', ')}`);
  }
  return [...new Set(names)].map((n) => known.get(n)!);
}
