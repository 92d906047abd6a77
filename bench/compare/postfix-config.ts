/**
 * The configuration files of the throwaway Postfix instance the comparison
 * benchmark runs beside Sluice, as text (pure: no files, no processes), so a
 * test can check them without Postfix installed.
 *
 * The instance is the same forwarding MX as Sluice's side (see
 * sluice-side.ts): in.test is a virtual alias domain (no local delivery,
 * `mydestination` empty), `user@in.test` -> `user-1@out.test` and
 * `Nuser@in.test` -> `user-N@out.test` (the recipients smtp-source writes with
 * `-r N`), unknown recipients refused at RCPT, and out.test sent by a static
 * transport map to the sink. Static routes on both sides: Postfix cannot ask a
 * DNS server on a port other than 53, so neither system looks up MX records.
 *
 * Everything lives under one directory (config, queue, data) and listens on
 * 127.0.0.1 only; no service is chrooted (the queue is not a chroot jail) so
 * it runs from a temp dir as root. Variants add postsrsd (SRS through the
 * canonical maps, the way postsrsd's README wires it) and OpenDKIM (a milter
 * signing with RSA-2048).
 */

import { postfixBaseMainCf, postfixMasterCf } from '@sluice/test-harness';

export interface PostfixInstanceOptions {
  /** config_directory; the queue and data directories are below it. */
  dir: string;
  /** The smtpd port (127.0.0.1). */
  smtpPort: number;
  /** Where out.test goes: the sink on 127.0.0.1. */
  sinkPort: number;
  /** Aliases user@in.test and 2user..Nuser@in.test. */
  recipients: number;
  /** postsrsd's forward and reverse lookup ports (SRS variant). */
  srs?: { forwardPort: number; reversePort: number };
  /** OpenDKIM's milter port (DKIM variant). */
  dkimMilterPort?: number;
}

export const IN_DOMAIN = 'in.test';
export const OUT_DOMAIN = 'out.test';

/** The recipient smtp-source writes as number `n` (1-based) of a message with `-t user@in.test -r N`. */
export function sourceRecipient(n: number): string {
  return n === 1 ? `user@${IN_DOMAIN}` : `${n}user@${IN_DOMAIN}`;
}

/** The forward of each recipient smtp-source writes: user@in.test -> user-1@out.test, Nuser -> user-N. */
export function forwards(recipients: number): Array<[string, string]> {
  return Array.from({ length: recipients }, (_, i) => [
    sourceRecipient(i + 1),
    `user-${i + 1}@${OUT_DOMAIN}`,
  ]);
}

/** main.cf in full (postfixBaseMainCf's lines, then mxMainCfLines'), as Postfix reads it. */
export function mainCf(o: PostfixInstanceOptions): string {
  return `${[
    '# Throwaway Postfix instance of bench/compare.ts (generated; removed after the run).',
    ...postfixBaseMainCf(o.dir),
    ...mxMainCfLines(o),
  ].join('\n')}\n`;
}

/** The MX's own main.cf lines (after the base every throwaway instance has). */
export function mxMainCfLines(o: PostfixInstanceOptions): string[] {
  const lines = [
    `myhostname = mx.${IN_DOMAIN}`,
    `mydomain = ${IN_DOMAIN}`,
    'myorigin = $mydomain',
    'mydestination =',
    'local_transport = error:no local delivery',
    'mynetworks = 127.0.0.1/32',
    'relay_domains =',
    `virtual_alias_domains = ${IN_DOMAIN}`,
    `virtual_alias_maps = texthash:${o.dir}/virtual`,
    `transport_maps = texthash:${o.dir}/transport`,
    // An MX: mail for our domain only; unknown recipients of in.test are refused at RCPT
    // (smtpd_reject_unlisted_recipient, on by default, checks virtual_alias_maps).
    'smtpd_relay_restrictions = reject_unauth_destination',
    'smtpd_recipient_restrictions =',
    'smtpd_banner = $myhostname ESMTP',
    'smtpd_tls_security_level = none',
    'smtp_tls_security_level = none',
    // The sink is on loopback; the transport's [127.0.0.1] needs no DNS.
    'smtp_host_lookup = native',
  ];
  if (o.srs) {
    // postsrsd's README: rewrite the envelope sender on the way in (forward SRS) and
    // SRS addresses coming back (reverse SRS).
    lines.push(
      `sender_canonical_maps = tcp:127.0.0.1:${o.srs.forwardPort}`,
      'sender_canonical_classes = envelope_sender',
      `recipient_canonical_maps = tcp:127.0.0.1:${o.srs.reversePort}`,
      'recipient_canonical_classes = envelope_recipient, header_recipient',
    );
  }
  if (o.dkimMilterPort) {
    lines.push(
      `smtpd_milters = inet:127.0.0.1:${o.dkimMilterPort}`,
      'non_smtpd_milters = $smtpd_milters',
      'milter_default_action = tempfail',
      'milter_protocol = 6',
    );
  }
  return lines;
}

/** master.cf: the stock services, none chrooted, smtpd on 127.0.0.1:smtpPort. */
export function masterCf(o: PostfixInstanceOptions): string {
  return postfixMasterCf(`127.0.0.1:${o.smtpPort}`);
}

/** virtual_alias_maps (texthash): each smtp-source recipient -> its forward. */
export function virtualMap(recipients: number): string {
  return `${forwards(recipients)
    .map(([from, to]) => `${from} ${to}`)
    .join('\n')}\n`;
}

/** transport_maps (texthash): out.test to the sink, no MX lookup. */
export function transportMap(sinkPort: number): string {
  return `${OUT_DOMAIN} smtp:[127.0.0.1]:${sinkPort}\n`;
}

/**
 * opendkim.conf: sign everything from loopback (InternalHosts) with one RSA-2048 key of in.test.
 * The key's directory must not be group or world writable (RequireSafeKeys), hence no pid file there.
 */
export function opendkimConf(o: { dir: string; port: number }): string {
  return `${[
    'Mode s',
    `Socket inet:${o.port}@127.0.0.1`,
    'UserID opendkim',
    'Syslog no',
    'Canonicalization relaxed/simple',
    'SignatureAlgorithm rsa-sha256',
    `KeyTable ${o.dir}/dkim-keytable`,
    `SigningTable refile:${o.dir}/dkim-signingtable`,
    'InternalHosts 127.0.0.1',
  ].join('\n')}\n`;
}

export function opendkimKeyTable(o: { selector: string; keyFile: string }): string {
  return `${o.selector}._domainkey.${IN_DOMAIN} ${IN_DOMAIN}:${o.selector}:${o.keyFile}\n`;
}

export function opendkimSigningTable(selector: string): string {
  return `* ${selector}._domainkey.${IN_DOMAIN}\n`;
}
