/**
 * What the rewriter builds from configuration once, at start: the SRS codec
 * (srs.*), the DKIM keyring (dkim.keys) and the ARC sealing key (arc.*).
 * Bad key configuration throws here, naming the key and the fix, so the
 * process fails at start instead of sending unsigned mail for days:
 * an unreadable or weak key (libs/dkim keys.ts), two active keys of one type
 * for a domain, an arc.selector that names no key.
 */
import { type SluiceConfig, srsDomainOf } from '@sluice/config';
import { buildKeyring, type DkimKey } from '@sluice/dkim';
import { Srs } from '@sluice/srs';
import type { FromRewriteContext } from './from-rewrite.ts';
import type { SigningContext } from './signing.ts';

export interface RewriterSetup {
  srs?: Srs;
  ourDomains: ReadonlySet<string>;
  signing: Omit<SigningContext, 'now'>;
  /** rewriter.fromRewrite (from-rewrite.ts). */
  fromRewrite: FromRewriteContext;
  /** For the service's info(): what is on. */
  summary: Record<string, unknown>;
}

export class RewriterConfigError extends Error {
  override name = 'RewriterConfigError';
}

export function rewriterSetup(
  config: Pick<SluiceConfig, 'srs' | 'dkim' | 'arc' | 'domains'> & Partial<Pick<SluiceConfig, 'rewriter'>>,
): RewriterSetup {
  const ourDomains = new Set([config.domains.primary, ...config.domains.aliases].map((d) => d.toLowerCase()));
  const srsDomain = srsDomainOf(config);
  const srs = srsDomain
    ? new Srs({
        domain: srsDomain,
        secrets: config.srs.secrets,
        maxAgeDays: config.srs.maxAgeDays,
        hashLength: config.srs.hashLength,
        separator: config.srs.separator,
      })
    : undefined;
  const keyring = buildKeyring(config.dkim.keys);
  let arcKey: DkimKey | undefined;
  if (config.arc.enabled) {
    const domain = (config.arc.domain ?? config.domains.primary).toLowerCase();
    if (config.arc.selector) {
      arcKey = keyring.find(domain, config.arc.selector);
      if (!arcKey) {
        throw new RewriterConfigError(
          `arc.selector: no dkim.keys entry for ${config.arc.selector}._domainkey.${domain} — add the key or fix the selector`,
        );
      }
    } else {
      arcKey = keyring.activeFor(domain)[0];
    }
  }
  return {
    srs,
    ourDomains,
    signing: {
      keyring,
      headers: config.dkim.headers,
      expiresInSeconds: config.dkim.expireDays * 86400,
      arcKey,
      ourDomains,
    },
    fromRewrite: {
      config: config.rewriter?.fromRewrite ?? {
        enabled: false,
        forwards: [],
        displayName: '{name} via {domain}',
      },
      ourDomains,
      primaryDomain: config.domains.primary.toLowerCase(),
    },
    summary: {
      fromRewrite: config.rewriter?.fromRewrite.enabled ? config.rewriter.fromRewrite.forwards : null,
      srsDomain: srsDomain ?? null,
      dkim: keyring.keys
        .filter((k) => k.active)
        .map((k) => `${k.selector}._domainkey.${k.domain} (${k.type})`),
      arc: arcKey ? `${arcKey.selector}._domainkey.${arcKey.domain}` : null,
    },
  };
}
