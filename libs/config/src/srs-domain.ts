/**
 * The SRS domain as every service sees it: `srs.domain`, else
 * srs.<domains.primary>; undefined when SRS is off (no `srs.secrets`). The
 * ingress accepts RCPT for it, the resolver reverses its addresses, the
 * rewriter makes them: one rule, here.
 */
import type { SluiceConfig } from './schema.ts';

export function srsDomainOf(config: Pick<SluiceConfig, 'srs' | 'domains'>): string | undefined {
  if (config.srs.secrets.length === 0) return undefined;
  return (config.srs.domain ?? `srs.${config.domains.primary}`).toLowerCase().replace(/\.$/, '');
}
