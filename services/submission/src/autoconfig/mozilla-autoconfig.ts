/**
 * The Mozilla autoconfig document (clientConfig version 1.1, the format of
 * https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat),
 * read by Thunderbird, Thunderbird for Android/K-9, Evolution, Delta Chat and
 * others from https://autoconfig.<domain>/mail/config-v1.1.xml and
 * https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml.
 *
 * One outgoingServer per submission listener, implicit TLS (465, "SSL")
 * before STARTTLS (587) as RFC 8314 §3.3 prefers; clients take the first they
 * can use. The user name is a placeholder the client fills in
 * (%EMAILADDRESS% or %EMAILLOCALPART%), so the document is the same for every
 * user of a domain. An incomingServer appears only when the organisation has
 * an IMAP server: Sluice is not a mailbox store. Thunderbird refuses a file
 * without one ("Need proper <incomingServer>") and falls back to guessing, so
 * an organisation without IMAP gets Thunderbird set up by hand
 * (docs/submission-clients.md); other readers use the outgoing part.
 */
import {
  type AutoconfigOptions,
  type ResolvedAutoconfig,
  resolveAutoconfig,
  type ServerEndpoint,
} from './autoconfig-options.ts';
import { requireAddressInDomains } from './mail-address.ts';
import { xmlText } from './xml-text.ts';

function socketType(e: ServerEndpoint): string {
  return e.tls === 'implicit' ? 'SSL' : 'STARTTLS';
}

function serverLines(
  tag: 'incomingServer' | 'outgoingServer',
  type: string,
  e: ServerEndpoint,
  user: string,
): string[] {
  return [
    `    <${tag} type="${type}">`,
    `      <hostname>${xmlText(e.host)}</hostname>`,
    `      <port>${e.port}</port>`,
    `      <socketType>${socketType(e)}</socketType>`,
    // The password goes in clear text inside the TLS session: AUTH PLAIN/LOGIN (RFC 4954 over RFC 8314 TLS).
    '      <authentication>password-cleartext</authentication>',
    `      <username>${user}</username>`,
    `    </${tag}>`,
  ];
}

/**
 * The document for one domain (default: the primary). It names only that
 * domain, not the organisation's other ones: whoever asks learns nothing
 * about which domains belong together.
 */
export function mozillaAutoconfigXmlFor(c: ResolvedAutoconfig, domain?: string): string {
  const domains = [domain ?? c.domains[0]!];
  const user = c.username === 'local-part' ? '%EMAILLOCALPART%' : '%EMAILADDRESS%';
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<clientConfig version="1.1">',
    `  <emailProvider id="${xmlText(domains[0]!)}">`,
    ...domains.map((d) => `    <domain>${xmlText(d)}</domain>`),
    `    <displayName>${xmlText(c.displayName)}</displayName>`,
    `    <displayShortName>${xmlText(c.displayName)}</displayShortName>`,
    ...(c.imap ? serverLines('incomingServer', 'imap', c.imap, user) : []),
    ...c.submission.flatMap((e) => serverLines('outgoingServer', 'smtp', e, user)),
    '  </emailProvider>',
    '</clientConfig>',
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The document for `email`'s domain, or for the primary domain when no
 * address is given. Throws AddressRefused for an address outside the
 * configured domains.
 */
export function mozillaAutoconfigXml(o: AutoconfigOptions, email?: string): string {
  const c = resolveAutoconfig(o);
  const domain = email === undefined ? undefined : requireAddressInDomains(email, c.domains).domain;
  return mozillaAutoconfigXmlFor(c, domain);
}
