/**
 * RFC 6186 SRV records that let a mail client find the submission (and,
 * when configured, IMAP) servers of each mail domain, as zone-file lines.
 *
 * RFC 8314 §5.1 adds the "_submissions" service (implicit TLS, 465) beside
 * RFC 6186's "_submission" (587, STARTTLS) and has the client consider the
 * records of both names together, by priority: implicit TLS gets the lower
 * (preferred) priority, as RFC 8314 §3.3 prefers it, and STARTTLS stays as the
 * fallback for networks that block 465. Likewise "_imaps" (993) before
 * "_imap" (143). A service without a record is simply not advertised;
 * Sluice does not publish the "." target (RFC 2782 "decidedly not
 * available") for IMAP, because the organisation may have a mailbox provider
 * it has not told Sluice about.
 */
import { type AutoconfigOptions, resolveAutoconfig, type ServerEndpoint } from './autoconfig-options.ts';

export const SRV_TTL_SECONDS = 3600;

const PREFERRED_PRIORITY = 0;
const FALLBACK_PRIORITY = 10;

function line(domain: string, service: string, priority: number, e: ServerEndpoint): string {
  // RFC 2782: _Service._Proto.Name TTL Class SRV Priority Weight Port Target
  return `_${service}._tcp.${domain}. ${SRV_TTL_SECONDS} IN SRV ${priority} 1 ${e.port} ${e.host}.`;
}

export function srvRecords(o: AutoconfigOptions): string[] {
  const c = resolveAutoconfig(o);
  return c.domains.flatMap((domain) => [
    ...c.submission.map((e) =>
      e.tls === 'implicit'
        ? line(domain, 'submissions', PREFERRED_PRIORITY, e)
        : line(domain, 'submission', FALLBACK_PRIORITY, e),
    ),
    ...(c.imap
      ? [
          c.imap.tls === 'implicit'
            ? line(domain, 'imaps', PREFERRED_PRIORITY, c.imap)
            : line(domain, 'imap', FALLBACK_PRIORITY, c.imap),
        ]
      : []),
  ]);
}
