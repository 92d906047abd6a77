/**
 * The autoconfig documents, each parsed by a real XML parser and read the way
 * its client reads it: Thunderbird's clientConfig reader, Outlook's
 * Autodiscover response fields, Apple's Mail payload with its required keys,
 * and RFC 6186 SRV zone lines.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appleMobileconfig, NoIncomingServer } from './apple-mobileconfig.ts';
import { type AutoconfigOptions, resolveAutoconfig } from './autoconfig-options.ts';
import {
  AUTODISCOVER_RESPONSE_NS,
  autodiscoverJson,
  autodiscoverXml,
  OUTLOOK_RESPONSE_SCHEMA,
} from './autodiscover.ts';
import {
  assertWellFormed,
  outgoingServersOf,
  type PlistValue,
  parseXml,
  plistToValue,
  readLikeThunderbird,
} from './client-readers.test-helper.ts';
import { AddressRefused } from './mail-address.ts';
import { mozillaAutoconfigXml } from './mozilla-autoconfig.ts';
import { srvRecords } from './srv-records.ts';

const base: AutoconfigOptions = {
  domains: ['example.org', 'Alias.Example'],
  displayName: 'Example Mail',
  submissionHost: 'smtp.example.org',
  ports: { submission: 587, submissions: 465 },
};
const withImap: AutoconfigOptions = { ...base, imapHost: 'imap.provider.example', imapPort: 993 };

function refusal(fn: () => unknown): AddressRefused {
  try {
    fn();
  } catch (err) {
    if (err instanceof AddressRefused) return err;
    throw err;
  }
  assert.fail('expected AddressRefused');
}

describe('Mozilla autoconfig (clientConfig 1.1)', () => {
  it('is read by Thunderbird: IMAP incoming, SMTP 465 SSL first, then 587 STARTTLS', () => {
    const tb = readLikeThunderbird(mozillaAutoconfigXml(withImap, 'jane@alias.example'));
    assert.equal(tb.id, 'alias.example', 'provider id is the asked domain');
    assert.deepEqual(tb.domains, ['alias.example'], 'only the asked domain: the others stay private');
    assert.equal(tb.displayName, 'Example Mail');
    assert.deepEqual(tb.incoming, {
      type: 'imap',
      hostname: 'imap.provider.example',
      port: 993,
      socketType: 'SSL',
      auth: 'password-cleartext',
      username: '%EMAILADDRESS%',
    });
    assert.deepEqual(tb.outgoing, {
      type: 'smtp',
      hostname: 'smtp.example.org',
      port: 465,
      socketType: 'SSL',
      auth: 'password-cleartext',
      username: '%EMAILADDRESS%',
    });
    assert.deepEqual(tb.outgoingAlternatives, [{ ...tb.outgoing, port: 587, socketType: 'STARTTLS' }]);
  });

  it('without an IMAP host: outgoing servers only, which Thunderbird alone refuses (documented)', () => {
    const xml = mozillaAutoconfigXml(base, 'jane@example.org');
    const provider = (parseXml(xml).clientConfig as Record<string, Record<string, unknown>>).emailProvider!;
    assert.ok(!('incomingServer' in provider), 'no incomingServer without imapHost');
    const out = outgoingServersOf(xml);
    assert.deepEqual(
      out.map((s) => [s.hostname, s.port, s.socketType]),
      [
        ['smtp.example.org', 465, 'SSL'],
        ['smtp.example.org', 587, 'STARTTLS'],
      ],
    );
    assert.throws(() => readLikeThunderbird(xml), /Need proper <incomingServer>/);
  });

  it('STARTTLS IMAP on 143, local-part user names, a single port', () => {
    const xml = mozillaAutoconfigXml({
      ...base,
      ports: { submission: 587 },
      imapHost: 'imap.example.org',
      imapPort: 143,
      username: 'local-part',
    });
    const tb = readLikeThunderbird(xml);
    assert.equal(tb.id, 'example.org', 'no address: the primary domain');
    assert.deepEqual(
      [tb.incoming.port, tb.incoming.socketType, tb.incoming.username],
      [143, 'STARTTLS', '%EMAILLOCALPART%'],
    );
    assert.deepEqual(
      [tb.outgoing.port, tb.outgoing.socketType, tb.outgoing.username],
      [587, 'STARTTLS', '%EMAILLOCALPART%'],
    );
    assert.equal(tb.outgoingAlternatives.length, 0);
  });

  it('escapes the display name and refuses foreign or malformed addresses', () => {
    const xml = mozillaAutoconfigXml({ ...withImap, displayName: `A & B <"Mail"> 'x'` });
    assert.equal(readLikeThunderbird(xml).displayName, `A & B <"Mail"> 'x'`);
    assert.equal(refusal(() => mozillaAutoconfigXml(withImap, 'jane@elsewhere.example')).status, 404);
    assert.equal(refusal(() => mozillaAutoconfigXml(withImap, 'jane@example.org.evil.example')).status, 404);
    for (const bad of [
      '<x>@example.org',
      'a</domain><x>@example.org',
      'jane',
      'a@[192.0.2.1]',
      'a%b@example.org',
    ]) {
      assert.equal(refusal(() => mozillaAutoconfigXml(withImap, bad)).status, 400, bad);
    }
  });
});

describe('Microsoft Autodiscover (POX, outlook responseschema 2006a)', () => {
  type N = Record<string, unknown>;
  const protocols = (xml: string): N[] => {
    assertWellFormed(xml);
    const doc = parseXml(xml).Autodiscover as N;
    assert.equal(doc['@xmlns'], AUTODISCOVER_RESPONSE_NS);
    const response = doc.Response as N;
    assert.equal(response['@xmlns'], OUTLOOK_RESPONSE_SCHEMA);
    const account = response.Account as N;
    assert.equal(account.AccountType, 'email');
    assert.equal(account.Action, 'settings');
    return ([] as N[]).concat(account.Protocol as N | N[]);
  };

  it('names the preferred SMTP endpoint with the full address as login', () => {
    const p = protocols(autodiscoverXml(base, 'Jane.Doe@EXAMPLE.org'));
    assert.equal(p.length, 1);
    assert.deepEqual(p[0], {
      Type: 'SMTP',
      Server: 'smtp.example.org',
      Port: '465',
      DomainRequired: 'off',
      LoginName: 'Jane.Doe@example.org',
      SPA: 'off',
      Encryption: 'SSL',
      AuthRequired: 'on',
      UsePOPAuth: 'off',
      SMTPLast: 'off',
    });
  });

  it('lists IMAP first when configured; STARTTLS-only submission is Encryption TLS; login escaped', () => {
    const p = protocols(
      autodiscoverXml({ ...withImap, ports: { submission: 587 } }, "o'brien&co@alias.example"),
    );
    assert.deepEqual(
      p.map((x) => [x.Type, x.Server, x.Port, x.Encryption, x.LoginName]),
      [
        ['IMAP', 'imap.provider.example', '993', 'SSL', "o'brien&co@alias.example"],
        ['SMTP', 'smtp.example.org', '587', 'TLS', "o'brien&co@alias.example"],
      ],
    );
  });

  it('refuses foreign domains; the JSON v2 answer points at the XML endpoint', () => {
    assert.equal(refusal(() => autodiscoverXml(base, 'x@other.example')).status, 404);
    const address = { address: 'jane@example.org', localPart: 'jane', domain: 'example.org' };
    assert.deepEqual(autodiscoverJson(address, 'AutodiscoverV1'), {
      status: 200,
      body: {
        Protocol: 'AutodiscoverV1',
        Url: 'https://autodiscover.example.org/autodiscover/autodiscover.xml',
      },
    });
    assert.equal(autodiscoverJson(address, 'ActiveSync').status, 404);
  });
});

describe('Apple .mobileconfig (com.apple.mail.managed)', () => {
  const REQUIRED = [
    'EmailAccountType',
    'IncomingMailServerHostName',
    'IncomingMailServerAuthentication',
    'OutgoingMailServerHostName',
    'OutgoingMailServerAuthentication',
  ];
  const UUID = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;
  type Dict = { [key: string]: PlistValue };

  it('is a Configuration profile with one Mail payload holding the required keys', () => {
    const profile = plistToValue(appleMobileconfig(withImap, 'jane@example.org')) as Dict;
    assert.equal(profile.PayloadType, 'Configuration');
    assert.equal(profile.PayloadVersion, 1);
    assert.match(String(profile.PayloadUUID), UUID);
    const payloads = profile.PayloadContent as Dict[];
    assert.equal(payloads.length, 1);
    const mail = payloads[0]!;
    for (const key of REQUIRED) assert.ok(key in mail, `required key ${key}`);
    assert.equal(mail.PayloadType, 'com.apple.mail.managed');
    assert.match(String(mail.PayloadUUID), UUID);
    assert.notEqual(mail.PayloadUUID, profile.PayloadUUID);
    assert.deepEqual(
      [
        mail.EmailAccountType,
        mail.EmailAddress,
        mail.IncomingMailServerHostName,
        mail.IncomingMailServerPortNumber,
      ],
      ['EmailTypeIMAP', 'jane@example.org', 'imap.provider.example', 993],
    );
    assert.deepEqual(
      [
        mail.OutgoingMailServerHostName,
        mail.OutgoingMailServerPortNumber,
        mail.OutgoingMailServerUseSSL,
        mail.OutgoingMailServerAuthentication,
        mail.OutgoingMailServerUsername,
      ],
      ['smtp.example.org', 465, true, 'EmailAuthPassword', 'jane@example.org'],
    );
    assert.ok(!('OutgoingPassword' in mail) && !('IncomingPassword' in mail), 'no password in the profile');
  });

  it('is stable per address (a reinstall replaces) and distinct between addresses', () => {
    const a1 = plistToValue(appleMobileconfig(withImap, 'jane@example.org')) as Dict;
    const a2 = plistToValue(appleMobileconfig(withImap, 'JANE@Example.ORG')) as Dict;
    const b = plistToValue(appleMobileconfig(withImap, 'john@example.org')) as Dict;
    assert.equal(a1.PayloadIdentifier, a2.PayloadIdentifier);
    assert.equal(a1.PayloadUUID, a2.PayloadUUID);
    assert.notEqual(a1.PayloadUUID, b.PayloadUUID);
    assert.match(String(a1.PayloadIdentifier), /^org\.example\.sluice\.mail\.profile\./);
  });

  it('escapes what it carries, and needs an IMAP server', () => {
    const p = plistToValue(
      appleMobileconfig({ ...withImap, displayName: 'R&D <Mail>' }, 'a&b@example.org'),
    ) as Dict;
    const mail = (p.PayloadContent as Dict[])[0]!;
    assert.equal(mail.EmailAddress, 'a&b@example.org');
    assert.equal(p.PayloadOrganization, 'R&D <Mail>');
    assert.throws(() => appleMobileconfig(base, 'jane@example.org'), NoIncomingServer);
    assert.equal(refusal(() => appleMobileconfig(withImap, 'jane@foreign.example')).status, 404);
  });
});

describe('RFC 6186 SRV records', () => {
  it('prefers implicit TLS (RFC 8314 §5.1) for every domain, IMAP only when configured', () => {
    assert.deepEqual(srvRecords(base), [
      '_submissions._tcp.example.org. 3600 IN SRV 0 1 465 smtp.example.org.',
      '_submission._tcp.example.org. 3600 IN SRV 10 1 587 smtp.example.org.',
      '_submissions._tcp.alias.example. 3600 IN SRV 0 1 465 smtp.example.org.',
      '_submission._tcp.alias.example. 3600 IN SRV 10 1 587 smtp.example.org.',
    ]);
    const lines = srvRecords({ ...withImap, domains: ['example.org'] });
    assert.equal(lines.at(-1), '_imaps._tcp.example.org. 3600 IN SRV 0 1 993 imap.provider.example.');
  });
});

describe('options', () => {
  it('fail fast naming the key', () => {
    assert.throws(() => resolveAutoconfig({ ...base, domains: [] }), /submission\.autoconfig\.domains/);
    assert.throws(
      () => resolveAutoconfig({ ...base, domains: ['bad domain'] }),
      /submission\.autoconfig\.domains\[0\]/,
    );
    assert.throws(() => resolveAutoconfig({ ...base, ports: {} }), /no submission port/);
    assert.throws(() => resolveAutoconfig({ ...base, ports: { submission: 70000 } }), /ports\.submission/);
    assert.throws(() => resolveAutoconfig({ ...base, submissionHost: 'smtp' }), /submissionHost/);
    assert.equal(resolveAutoconfig({ ...base, imapPort: 993 }).imap, undefined, 'a defaulted imapPort alone');
    assert.throws(() => resolveAutoconfig({ ...base, displayName: 'a\u0001b' }), /displayName/);
  });
});
