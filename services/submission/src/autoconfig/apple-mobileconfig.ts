/**
 * An Apple configuration profile (.mobileconfig) holding one Mail payload
 * (PayloadType com.apple.mail.managed) for iOS, iPadOS and macOS Mail. The
 * profile is unsigned: the device says "Not Verified" when installing it,
 * which is honest — it is fetched over HTTPS from the organisation's own host
 * name, and signing would need a key on the endpoint.
 *
 * Apple's Mail payload requires an incoming server (IncomingMailServerHostName
 * is a required key), so a profile exists only when the organisation has an
 * IMAP server; without one `appleMobileconfig` throws NoIncomingServer and the
 * endpoint answers 404 with the manual settings page to follow instead.
 *
 * UUIDs and the identifier are derived from the address, so installing a
 * newer profile for the same address replaces the old one instead of adding a
 * second account. The password is never in the profile: the device asks for
 * it while installing. Outgoing and incoming passwords are asked separately,
 * because the mailbox provider may not share Sluice's credentials.
 */
import { createHash } from 'node:crypto';
import {
  type AutoconfigOptions,
  loginName,
  type ResolvedAutoconfig,
  resolveAutoconfig,
} from './autoconfig-options.ts';
import { type CheckedAddress, requireAddressInDomains } from './mail-address.ts';
import { xmlText } from './xml-text.ts';

export const MOBILECONFIG_CONTENT_TYPE = 'application/x-apple-aspen-config';

export class NoIncomingServer extends Error {
  constructor() {
    super('an Apple Mail profile needs an incoming (IMAP) server: set submission.autoconfig.imapHost');
    this.name = 'NoIncomingServer';
  }
}

/** A stable UUID (RFC 9562 §5.8 layout, version 8) from a name: same address, same profile identity. */
function stableUuid(name: string): string {
  const b = createHash('sha256').update(name).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex').toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

type PlistValue = string | number | boolean;

function plistEntries(entries: [string, PlistValue][], indent: string): string[] {
  return entries.flatMap(([key, value]) => [
    `${indent}<key>${xmlText(key)}</key>`,
    typeof value === 'boolean'
      ? `${indent}${value ? '<true/>' : '<false/>'}`
      : typeof value === 'number'
        ? `${indent}<integer>${Math.trunc(value)}</integer>`
        : `${indent}<string>${xmlText(value)}</string>`,
  ]);
}

export function appleMobileconfigFor(c: ResolvedAutoconfig, address: CheckedAddress): string {
  if (!c.imap) throw new NoIncomingServer();
  const login = loginName(c, address);
  const outgoing = c.submission[0]!;
  const identifier = `${address.domain.split('.').reverse().join('.')}.sluice.mail`;
  const key = address.address.toLowerCase();
  const mail: [string, PlistValue][] = [
    ['EmailAccountDescription', `${c.displayName} (${address.address})`],
    ['EmailAccountType', 'EmailTypeIMAP'],
    ['EmailAddress', address.address],
    ['IncomingMailServerAuthentication', 'EmailAuthPassword'],
    ['IncomingMailServerHostName', c.imap.host],
    ['IncomingMailServerPortNumber', c.imap.port],
    // "Use SSL": TLS on the connection; Mail uses STARTTLS when the port is a STARTTLS one (143, 587).
    ['IncomingMailServerUseSSL', true],
    ['IncomingMailServerUsername', login],
    ['OutgoingMailServerAuthentication', 'EmailAuthPassword'],
    ['OutgoingMailServerHostName', outgoing.host],
    ['OutgoingMailServerPortNumber', outgoing.port],
    ['OutgoingMailServerUseSSL', true],
    ['OutgoingMailServerUsername', login],
    ['OutgoingPasswordSameAsIncomingPassword', false],
    ['PayloadDescription', `Sends as ${address.address} through ${outgoing.host}`],
    ['PayloadDisplayName', `Mail account ${address.address}`],
    ['PayloadIdentifier', `${identifier}.account.${stableUuid(`account|${key}`)}`],
    ['PayloadType', 'com.apple.mail.managed'],
    ['PayloadUUID', stableUuid(`account|${key}`)],
    ['PayloadVersion', 1],
  ];
  const profile: [string, PlistValue][] = [
    ['PayloadDescription', `Sets up ${address.address} for sending through ${outgoing.host}`],
    ['PayloadDisplayName', `${c.displayName}: ${address.address}`],
    ['PayloadIdentifier', `${identifier}.profile.${stableUuid(`profile|${key}`)}`],
    ['PayloadOrganization', c.displayName],
    ['PayloadRemovalDisallowed', false],
    ['PayloadType', 'Configuration'],
    ['PayloadUUID', stableUuid(`profile|${key}`)],
    ['PayloadVersion', 1],
  ];
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    '  <key>PayloadContent</key>',
    '  <array>',
    '    <dict>',
    ...plistEntries(mail, '      '),
    '    </dict>',
    '  </array>',
    ...plistEntries(profile, '  '),
    '</dict>',
    '</plist>',
  ];
  return `${lines.join('\n')}\n`;
}

/** The profile for `email`; throws AddressRefused outside the configured domains, NoIncomingServer without IMAP. */
export function appleMobileconfig(o: AutoconfigOptions, email: string): string {
  const c = resolveAutoconfig(o);
  return appleMobileconfigFor(c, requireAddressInDomains(email, c.domains));
}
