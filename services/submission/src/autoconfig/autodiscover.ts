/**
 * Microsoft Autodiscover answers for Outlook's POX (plain old XML) lookup:
 * Outlook POSTs a request naming the address to
 * https://<domain>/autodiscover/autodiscover.xml or
 * https://autodiscover.<domain>/autodiscover/autodiscover.xml and reads an
 * Account of type "email" with one Protocol per server ([MS-OXDSCLI] §2.2.4,
 * the "outlook/responseschema/2006a" response schema). Outlook uses the first
 * Protocol of each Type, so only the preferred submission endpoint is named
 * (implicit TLS first, RFC 8314 §3.3); Encryption "SSL" is implicit TLS and
 * "TLS" is STARTTLS.
 *
 * Newer Outlook versions first ask the JSON "Autodiscover v2" endpoint
 * (GET /autodiscover/autodiscover.json?Email=...&Protocol=AutodiscoverV1),
 * whose only useful answer for a non-Exchange server is where the v1 XML
 * lives: `autodiscoverJson` gives that, and 404 for every other protocol
 * (ActiveSync, EWS...) so the client moves on.
 */
import {
  type AutoconfigOptions,
  loginName,
  type ResolvedAutoconfig,
  resolveAutoconfig,
  type ServerEndpoint,
} from './autoconfig-options.ts';
import { type CheckedAddress, requireAddressInDomains } from './mail-address.ts';
import { xmlText } from './xml-text.ts';

export const AUTODISCOVER_RESPONSE_NS =
  'http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006';
export const OUTLOOK_RESPONSE_SCHEMA =
  'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a';
export const AUTODISCOVER_XML_PATH = '/autodiscover/autodiscover.xml';

function protocolLines(type: 'IMAP' | 'SMTP', e: ServerEndpoint, login: string): string[] {
  return [
    '      <Protocol>',
    `        <Type>${type}</Type>`,
    `        <Server>${xmlText(e.host)}</Server>`,
    `        <Port>${e.port}</Port>`,
    '        <DomainRequired>off</DomainRequired>',
    `        <LoginName>${xmlText(login)}</LoginName>`,
    // SPA is NTLM ("Secure Password Authentication"): off, the password goes inside TLS.
    '        <SPA>off</SPA>',
    `        <Encryption>${e.tls === 'implicit' ? 'SSL' : 'TLS'}</Encryption>`,
    '        <AuthRequired>on</AuthRequired>',
    ...(type === 'SMTP' ? ['        <UsePOPAuth>off</UsePOPAuth>', '        <SMTPLast>off</SMTPLast>'] : []),
    '      </Protocol>',
  ];
}

export function autodiscoverXmlFor(c: ResolvedAutoconfig, address: CheckedAddress): string {
  const login = loginName(c, address);
  const submission = c.submission[0]!;
  const lines = [
    '<?xml version="1.0" encoding="utf-8"?>',
    `<Autodiscover xmlns="${AUTODISCOVER_RESPONSE_NS}">`,
    `  <Response xmlns="${OUTLOOK_RESPONSE_SCHEMA}">`,
    '    <Account>',
    '      <AccountType>email</AccountType>',
    '      <Action>settings</Action>',
    ...(c.imap ? protocolLines('IMAP', c.imap, login) : []),
    ...protocolLines('SMTP', submission, login),
    '    </Account>',
    '  </Response>',
    '</Autodiscover>',
  ];
  return `${lines.join('\n')}\n`;
}

/** The Autodiscover response for `email`; throws AddressRefused outside the configured domains. */
export function autodiscoverXml(o: AutoconfigOptions, email: string): string {
  const c = resolveAutoconfig(o);
  return autodiscoverXmlFor(c, requireAddressInDomains(email, c.domains));
}

export interface JsonAnswer {
  status: 200 | 404;
  body: Record<string, string>;
}

/**
 * The Autodiscover v2 (JSON) answer: for Protocol=AutodiscoverV1 the URL of
 * the XML endpoint on autodiscover.<domain> (the name operators point at this
 * endpoint); anything else is not served.
 */
export function autodiscoverJson(address: CheckedAddress, protocol: string): JsonAnswer {
  if (protocol.toLowerCase() !== 'autodiscoverv1') {
    return {
      status: 404,
      body: { ErrorCode: 'InvalidProtocol', ErrorMessage: 'Only AutodiscoverV1 (POX) is served here' },
    };
  }
  return {
    status: 200,
    body: {
      Protocol: 'AutodiscoverV1',
      Url: `https://autodiscover.${address.domain}${AUTODISCOVER_XML_PATH}`,
    },
  };
}
