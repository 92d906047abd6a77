/**
 * The one configuration schema of Sluice. Every key is declared here with its
 * default and a description; the TypeScript types are derived from it, the
 * loader validates against it (unknown keys are errors, so a typo fails at
 * start-up instead of being ignored), and docs/configuration.md documents it.
 *
 * Secrets (passwords, keys) are `secret` values: either the string itself or
 * `{ file: /path }` (a Kubernetes secret mount) or `{ env: NAME }`; the loader
 * replaces them with the string before any service sees the config.
 */
import { z } from 'zod';

const port = z.number().int().min(1).max(65535);
/** A port to listen on; 0 lets the OS pick a free one (tests, several instances on one host). */
const listenPort = z.number().int().min(0).max(65535);
/** A duration in seconds. Zero is refused: to timers and to NATS it means "no timeout" or "the default". */
const seconds = z.number().positive();
/**
 * Weights of the filter's named rules (docs/filter.md describes each). A
 * message's score is the sum of the weights of the rules it hits; negative
 * weights are credit.
 */
const weight = (def: number, what: string) => z.number().default(def).describe(what);
const ruleWeightShape = {
  AUTH_SPF_PASS: weight(-0.5, 'SPF pass for MAIL FROM (RFC 7208 §2.6.3).'),
  AUTH_SPF_FAIL: weight(3, 'SPF fail: the client IP is not authorized (RFC 7208 §2.6.4).'),
  AUTH_SPF_SOFTFAIL: weight(1, 'SPF softfail (RFC 7208 §2.6.5).'),
  AUTH_SPF_PERMERROR: weight(1, 'SPF record broken (RFC 7208 §2.6.7).'),
  AUTH_DKIM_PASS: weight(-0.5, 'At least one DKIM signature verifies (RFC 6376 §6.1).'),
  AUTH_DKIM_FAIL: weight(1, 'A DKIM signature does not verify (fail, neutral or permerror).'),
  AUTH_DKIM_PARTIAL_BODY: weight(
    1,
    'A passing DKIM signature covers only part of the body (l=, RFC 6376 §8.2).',
  ),
  AUTH_DMARC_PASS: weight(-1, 'DMARC pass: an aligned SPF or DKIM pass (RFC 9989).'),
  AUTH_DMARC_FAIL: weight(3, 'DMARC fail, whatever the policy (RFC 9989).'),
  AUTH_DMARC_POLICY_QUARANTINE: weight(
    2,
    'DMARC fail and the domain publishes p=quarantine (added to AUTH_DMARC_FAIL).',
  ),
  AUTH_DMARC_POLICY_REJECT: weight(
    4,
    'DMARC fail and the domain publishes p=reject (added to AUTH_DMARC_FAIL).',
  ),
  AUTH_DMARC_FROM_UNEVALUABLE: weight(
    3,
    'The author cannot be evaluated: several From fields or addresses, no domain (counted as DMARC fail too).',
  ),
  AUTH_ARC_PASS_DMARC_FAIL: weight(
    -4,
    'DMARC fails but a valid ARC chain vouches for an indirect flow (RFC 9989: do not reject on p=reject alone).',
  ),
  AUTH_ARC_FAIL: weight(1, 'The ARC chain is broken (RFC 8617 §5.2).'),
  FROM_OURS_UNAUTHENTICATED: weight(
    20,
    'From: one of our domains, from the MX door, without DMARC pass (used when antiSpoofing.action is score).',
  ),
  DNSBL_LISTED: weight(0, 'Base weight of a DNSBL listing of the client IP; each zone adds its own weight.'),
  URIBL_LISTED: weight(0, 'Base weight of a URIBL listing of a link; each zone adds its own weight.'),
  HDR_MISSING_DATE: weight(1, 'No Date header (RFC 5322 §3.6: required).'),
  HDR_MISSING_MESSAGE_ID: weight(1, 'No Message-ID header (RFC 5322 §3.6.4: should be present).'),
  HDR_MULTIPLE_FROM: weight(3, 'More than one From header (RFC 5322 §3.6: at most one).'),
  HDR_NUL: weight(3, 'A NUL byte in the message (RFC 5322 §2.1: not allowed).'),
  HDR_LINE_TOO_LONG: weight(1, 'A line longer than 998 characters (RFC 5322 §2.1.1).'),
  MIME_MALFORMED: weight(
    2,
    'multipart without a boundary, or its boundary never occurs / never closes (RFC 2046 §5.1.1).',
  ),
  RSPAMD_SCORE: weight(1, 'Multiplier for the score rspamd reports (its symbols are listed as hits).'),
} as const;
const ruleWeights = z
  .object(ruleWeightShape)
  .strict()
  .default(
    () =>
      Object.fromEntries(Object.entries(ruleWeightShape).map(([k, v]) => [k, v.parse(undefined)])) as never,
  )
  .describe('Weight of each named filter rule (docs/filter.md).');
const filterActions = z
  .object({
    reject: z.number().default(15).describe('Score at or above which the message is refused, 550 5.7.1.'),
    greylist: z
      .number()
      .default(6)
      .describe('Score at or above which an unknown triplet is greylisted, 451 4.7.1 (if greylist.enabled).'),
    tag: z.number().default(4).describe('Score at or above which X-Spam-Status says Yes.'),
  })
  .strict()
  .default({ reject: 15, greylist: 6, tag: 4 })
  .describe("Score thresholds of the filter's actions.");
const dnsZoneWeight = z
  .object({
    zone: z.string().min(1).describe("The list's DNS zone, e.g. zen.spamhaus.org."),
    weight: z.number().default(5).describe('Added to the score when the zone lists the IP or host.'),
  })
  .strict();
const engineFailure = z
  .enum(['tempfail', 'skip'])
  .default('tempfail')
  .describe(
    'When the engine fails or times out: tempfail (451, the client retries) or skip (accept, tagged ENGINE_SKIPPED).',
  );

const hostname = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/,
    'a DNS hostname',
  );
const domain = hostname.transform((d) => d.toLowerCase().replace(/\.$/, ''));
/** A full address local@domain, or @domain for a whole domain (catch-all / domain rule). */
const addressKey = z
  .string()
  .regex(/^([^@\s]+)?@[^@\s]+$/, 'an address like user@example.org (or @example.org for the whole domain)')
  .transform((a) => a.toLowerCase());
const address = z
  .string()
  .regex(/^[^@\s]+@[^@\s]+$/, 'an address like user@example.org')
  .transform((a) => a.toLowerCase());

/** A secret: inline string, or read from a file or an environment variable at load time. */
export const secretSchema = z.union([
  z.string(),
  z.object({ file: z.string().min(1) }).strict(),
  z.object({ env: z.string().min(1) }).strict(),
]);

const listen = z
  .object({
    host: z.string().default('0.0.0.0').describe('Address to bind.'),
    port: listenPort.describe('TCP port (0: any free port).'),
  })
  .strict();

export const transportSchema = z
  .object({
    host: z.string().min(1).describe('Host name or IP of the next hop.'),
    port: port.default(25).describe('Port of the next hop.'),
    lmtp: z.boolean().default(false).describe('Speak LMTP (RFC 2033) instead of SMTP.'),
    clientCert: z
      .string()
      .min(1)
      .optional()
      .describe(
        'PEM file: a TLS client certificate (chain) to present to this next hop; STARTTLS is then required (no cleartext fallback). With clientKey.',
      ),
    clientKey: z.string().min(1).optional().describe('PEM file: the private key of clientCert.'),
  })
  .strict();

/** routing.ldap: where the directory is and how its entries map to routing rules. */
const ldapSchema = z
  .object({
    urls: z
      .array(z.string().regex(/^ldaps?:\/\/[^\s]+$/, 'an ldap:// or ldaps:// URL'))
      .min(1)
      .describe('LDAP server URLs, tried in order (ldap:// or ldaps://).'),
    baseDn: z.string().min(1).describe('Search base, e.g. ou=users,dc=example,dc=org.'),
    filter: z
      .string()
      .regex(/^\(.*\)$/, 'an LDAP filter in parentheses (RFC 4515)')
      .default('(objectClass=*)')
      .describe(
        'Filter selecting the entries that carry routing (RFC 4515), e.g. (objectClass=debianAccount).',
      ),
    uidAttribute: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]*$/, 'an attribute name')
      .default('uid')
      .describe('Attribute holding the local part: uid@domain is the address the entry routes.'),
    forwardAttribute: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]*$/, 'an attribute name')
      .default('emailForward')
      .describe('Attribute holding the forward targets (multi-valued: one address per value).'),
    domain: domain.optional().describe("The domain of the directory's addresses (default: domains.primary)."),
    startTls: z
      .boolean()
      .default(false)
      .describe('Upgrade ldap:// connections with StartTLS (RFC 4511 §4.14) before binding.'),
    caFile: z
      .string()
      .optional()
      .describe('CA certificate (PEM) to verify the server with (ldaps or StartTLS).'),
    bindDn: secretSchema
      .optional()
      .describe('DN to bind as (secret: string, {file}, {env}); anonymous when absent.'),
    bindPassword: secretSchema.optional().describe('Password of bindDn (secret).'),
    timeout: seconds.default(10).describe('Connect and search timeout, seconds.'),
    refreshInterval: seconds.default(300).describe('Re-read the directory this often, seconds.'),
    maxStaleness: seconds
      .default(86400)
      .describe(
        'While LDAP is unreachable, answer from the snapshot until it is this old (seconds); past it, lookups tempfail (451).',
      ),
    maxDeleteShare: z
      .number()
      .min(0)
      .max(1)
      .default(0.2)
      .describe(
        'A refresh that would remove more than this share of the entries is held back and reported (`sluice ldap refresh --force` applies it).',
      ),
  })
  .strict();

/** RFC 3464 delivery status notifications the egress sends (services/egress/src/notify-sender.ts). */
const EGRESS_DSN_DEFAULTS = {
  enabled: true,
  delayWarningAfter: 0,
  returnContentMaxBytes: 256 * 1024,
};
const egressDsnSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe('Send failure DSNs (and success/delay DSNs the sender asked for) to the envelope sender.'),
    delayWarningAfter: z
      .number()
      .nonnegative()
      .default(0)
      .describe(
        'Send one delay warning (Action: delayed) per recipient still deferred this many seconds after arrival; 0: never (e.g. 14400 for 4 h).',
      ),
    returnContentMaxBytes: z
      .number()
      .int()
      .min(1024)
      .default(256 * 1024)
      .describe(
        'RET=FULL returns the original message up to this size in bytes; a larger one is returned as its headers only (text/rfc822-headers).',
      ),
    from: z
      .string()
      .optional()
      .describe('From: and Reporting-MTA address of DSNs (default: MAILER-DAEMON@<domains.primary>).'),
  })
  .strict()
  .default(EGRESS_DSN_DEFAULTS)
  .describe('Delivery status notifications (RFC 3461, RFC 3464): bounces, delay warnings, success notices.');

/** The notice to a forward's owner when the forward target refuses the mail for good. */
const FORWARD_FAILURE_NOTICE_DEFAULTS = { enabled: true, maxPerDay: 1 };
const forwardFailureNoticeSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'Tell the owner of a forward when its target refuses forwarded mail permanently (e.g. a DMARC refusal).',
      ),
    maxPerDay: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe('Notices per forward owner per UTC day, at most (the rest are only logged).'),
  })
  .strict()
  .default(FORWARD_FAILURE_NOTICE_DEFAULTS)
  .describe('Forward-failure notices to the owner of a forward (no DSN reaches them otherwise).');

/** A window's limit of recipients: 0 = no limit in that window. */
const recipientLimit = (def: number, window: string) =>
  z
    .number()
    .int()
    .min(0)
    .default(def)
    .describe(`Recipients per ${window} (a message to 10 people counts 10); 0: no limit.`);
const rateLimitsSchema = (d: { perMinute: number; perHour: number; perDay: number }) =>
  z
    .object({
      perMinute: recipientLimit(d.perMinute, 'minute'),
      perHour: recipientLimit(d.perHour, 'hour'),
      perDay: recipientLimit(d.perDay, 'day (UTC)'),
    })
    .strict()
    .default(d);
const USER_RATE_DEFAULTS = { perMinute: 30, perHour: 300, perDay: 1000 };
const BULK_RATE_DEFAULTS = { perMinute: 2000, perHour: 50000, perDay: 500000 };
const RELAY_RATE_DEFAULTS = { perMinute: 300, perHour: 5000, perDay: 50000 };

const SUBMISSION_LISTEN_DEFAULTS = {
  starttls: [{ host: '0.0.0.0', port: 587 }],
  implicitTls: [{ host: '0.0.0.0', port: 465 }],
};
const THROTTLE_DEFAULTS = {
  maxFailuresPerIp: 20,
  maxFailuresPerUserNetwork: 10,
  maxFailuresPerUser: 50,
  window: 900,
  ban: 900,
  maxBan: 86400,
};
const SUBMISSION_LIMIT_DEFAULTS = {
  perIp: 20,
  softErrors: 3,
  hardErrors: 10,
  commandTimeout: 300,
  dataTimeout: 600,
  maxSessionTime: 1800,
};

/** A relay client: one internal host, known by its TLS client certificate. */
const relayClientSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, 'a name of letters, digits, `_`, `.` and `-`')
      .describe('Name of the client in logs, metrics and the envelope (client.auth.user is relay:<name>).'),
    fingerprintSha256: z
      .string()
      .transform((f) => f.replace(/:/g, '').toLowerCase())
      .pipe(z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 fingerprint: 64 hex digits (colons allowed)'))
      .optional()
      .describe(
        'SHA-256 fingerprint of the client certificate (`openssl x509 -noout -fingerprint -sha256`): pins one certificate.',
      ),
    subjectCn: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Subject common name (CN) of the client certificate: any certificate of the CA with this CN.',
      ),
    senderDomains: z
      .array(domain)
      .min(1)
      .describe('Domains the client may use in MAIL FROM and the From header (e.g. lists.example.org).'),
    rateClass: z
      .enum(['default', 'bulk'])
      .default('default')
      .describe('Which relay rate limits apply: default, or bulk for mass mailings (the CRM).'),
  })
  .strict()
  .refine((c) => c.fingerprintSha256 !== undefined || c.subjectCn !== undefined, {
    message: 'a relay client needs fingerprintSha256 or subjectCn — set one to say which certificate it is',
  });

const submissionSchema = z
  .object({
    listen: z
      .object({
        starttls: z
          .array(listen)
          .default(SUBMISSION_LISTEN_DEFAULTS.starttls)
          .describe('Submission listeners (RFC 6409, port 587): STARTTLS required before AUTH.'),
        implicitTls: z
          .array(listen)
          .default(SUBMISSION_LISTEN_DEFAULTS.implicitTls)
          .describe('Submissions listeners (RFC 8314 §3.3, port 465): TLS from the first byte.'),
      })
      .strict()
      .default(SUBMISSION_LISTEN_DEFAULTS)
      .describe('Where people submit mail (empty lists: that kind of listener is not opened).'),
    tls: z
      .object({
        certFile: z
          .string()
          .optional()
          .describe(
            'PEM certificate chain for 587 and 465 (the name clients connect to); reloaded when it changes.',
          ),
        keyFile: z.string().optional().describe('PEM private key of certFile; reloaded when it changes.'),
        selfSigned: z
          .boolean()
          .default(false)
          .describe(
            'Without certFile/keyFile: a generated self-signed certificate (tests only: clients will warn).',
          ),
        generatedDir: z
          .string()
          .default('.sluice/tls')
          .describe('Where the self-signed certificate is kept.'),
      })
      .strict()
      .default({ selfSigned: false, generatedDir: '.sluice/tls' })
      .describe(
        'The TLS certificate of the submission listeners (TLS 1.2 or later); required: AUTH needs TLS.',
      ),
    auth: z
      .object({
        ldap: ldapSchema.optional().describe('The directory credentials come from (default: routing.ldap).'),
        userAttribute: z
          .string()
          .regex(/^[A-Za-z][A-Za-z0-9-]*$/, 'an attribute name')
          .default('uid')
          .describe('Attribute holding the login name (the canonical user id).'),
        passwordAttribute: z
          .string()
          .regex(/^[A-Za-z][A-Za-z0-9-]*$/, 'an attribute name')
          .default('mailPassword')
          .describe('Attribute holding the mail password hash ({CRYPT}, {SSHA}, {SSHA512}, {ARGON2}).'),
        userFilter: z
          .string()
          .regex(/^\(.*\)$/, 'an LDAP filter in parentheses (RFC 4515)')
          .optional()
          .describe('Extra LDAP filter for the users who may submit, e.g. (!(accountStatus=locked)).'),
        refreshInterval: seconds
          .default(300)
          .describe('Re-read the hashes from LDAP into the KV snapshot this often, seconds.'),
        throttle: z
          .object({
            maxFailuresPerIp: z
              .number()
              .int()
              .min(1)
              .default(THROTTLE_DEFAULTS.maxFailuresPerIp)
              .describe('Failed logins from one client IP (IPv6: /64) within `window` before a ban.'),
            maxFailuresPerUserNetwork: z
              .number()
              .int()
              .min(1)
              .default(THROTTLE_DEFAULTS.maxFailuresPerUserNetwork)
              .describe(
                'Failed logins for one user from one client IP (IPv6: /64) within `window` before that user is banned from that network only (decision 0040).',
              ),
            maxFailuresPerUser: z
              .number()
              .int()
              .min(1)
              .default(THROTTLE_DEFAULTS.maxFailuresPerUser)
              .describe(
                'Failed logins for one user from anywhere within `window` before the user is braked: 454 4.7.0 until the window is over, except from networks the user logged in from within the last day. Keep it well above maxFailuresPerUserNetwork.',
              ),
            window: seconds.default(THROTTLE_DEFAULTS.window).describe('Failure counting window, seconds.'),
            ban: seconds
              .default(THROTTLE_DEFAULTS.ban)
              .describe(
                'First ban (of a network, or of a user from a network), seconds; each next ban doubles.',
              ),
            maxBan: seconds
              .max(86400)
              .default(THROTTLE_DEFAULTS.maxBan)
              .describe('Longest ban, seconds (at most a day: the throttle bucket forgets a key after one).'),
          })
          .strict()
          .default(THROTTLE_DEFAULTS)
          .describe('Brute-force protection shared by all replicas (KV counters, escalating bans).'),
        banReply: z
          .enum(['454', '421'])
          .default('454')
          .describe(
            'Answer to a banned client: 454 4.7.0 (AUTH refused, session stays) or 421 4.7.0 and close.',
          ),
      })
      .strict()
      .default({
        userAttribute: 'uid',
        passwordAttribute: 'mailPassword',
        refreshInterval: 300,
        throttle: THROTTLE_DEFAULTS,
        banReply: '454',
      })
      .describe('SMTP AUTH (RFC 4954, PLAIN and LOGIN under TLS) against LDAP hashes kept in a KV snapshot.'),
    senderGrants: z
      .record(address, z.array(z.string().min(1)).min(1))
      .default({})
      .describe(
        'Role addresses and the users (login names) who may send as them, besides the addresses that route to each user: `info@example.org: [alice, bob]`.',
      ),
    privacy: z
      .object({
        hideClient: z
          .boolean()
          .default(true)
          .describe(
            'Leave the client IP, host name and HELO out of the Received header of authenticated mail (no X-Originating-IP is ever added).',
          ),
        clientTlsDetails: z
          .boolean()
          .default(false)
          .describe("Name the client's TLS protocol and cipher in the Received header."),
      })
      .strict()
      .default({ hideClient: true, clientTlsDetails: false })
      .describe('What the Received header tells about the submitting client.'),
    rateLimits: rateLimitsSchema(USER_RATE_DEFAULTS).describe(
      'Per-user sending limits shared by every replica (KV counters): RCPT beyond a limit gets 450 4.7.1.',
    ),
    relay: z
      .object({
        listen: z
          .array(listen)
          .min(1)
          .describe('Relay listeners (TLS from the first byte, client certificate required).'),
        caFile: z
          .string()
          .min(1)
          .describe("PEM CA certificate(s) that issue the relay clients' certificates."),
        clients: z.array(relayClientSchema).min(1).describe('The internal hosts allowed to relay.'),
        rateLimits: z
          .object({
            default: rateLimitsSchema(RELAY_RATE_DEFAULTS).describe('Limits of each default-class client.'),
            bulk: rateLimitsSchema(BULK_RATE_DEFAULTS).describe('Limits of each bulk-class client.'),
          })
          .strict()
          .default({ default: RELAY_RATE_DEFAULTS, bulk: BULK_RATE_DEFAULTS })
          .describe('Relay rate classes, per client.'),
      })
      .strict()
      .optional()
      .describe('Relay door for internal hosts (lists, tickets, CRM) authenticated by mutual TLS.'),
    filter: z
      .boolean()
      .default(true)
      .describe(
        'Ask the filter for a verdict on submitted mail (content checks, engines; anti-spoofing is exempt).',
      ),
    maxMessageBytes: z
      .number()
      .int()
      .min(1024)
      .default(50 * 1024 * 1024)
      .describe('SIZE limit (RFC 1870); larger messages get 552 5.3.4.'),
    maxRecipients: z.number().int().min(1).default(100).describe('Recipients per message.'),
    maxClients: z.number().int().min(1).default(500).describe('Concurrent sessions per process.'),
    filterTimeout: seconds.default(30).describe('Wait for the filter verdict, seconds; then 451.'),
    lookupTimeout: seconds
      .default(5)
      .describe('Wait for the resolver (sender ownership), seconds; then 451.'),
    socketTimeout: seconds.default(300).describe('Idle timeout of a session, seconds.'),
    drainTimeout: seconds.default(30).describe('On SIGTERM: how long sessions may take to finish, seconds.'),
    maxBodyBytesInFlight: z
      .number()
      .int()
      .min(64 * 1024)
      .default(64 * 1024 * 1024)
      .describe(
        'Bytes of message bodies held in memory at once by this service (452 4.3.1 beyond). At least bus.inlineMaxBytes + 384 KiB.',
      ),
    limits: z
      .object({
        perIp: z
          .number()
          .int()
          .min(1)
          .default(SUBMISSION_LIMIT_DEFAULTS.perIp)
          .describe('Sessions per client IP.'),
        softErrors: z
          .number()
          .int()
          .min(1)
          .default(SUBMISSION_LIMIT_DEFAULTS.softErrors)
          .describe('Errors after which each next error reply is delayed.'),
        hardErrors: z
          .number()
          .int()
          .min(1)
          .default(SUBMISSION_LIMIT_DEFAULTS.hardErrors)
          .describe('Errors before 421 4.7.0 and disconnect.'),
        commandTimeout: seconds
          .default(SUBMISSION_LIMIT_DEFAULTS.commandTimeout)
          .describe('Seconds for a whole command.'),
        dataTimeout: seconds
          .default(SUBMISSION_LIMIT_DEFAULTS.dataTimeout)
          .describe('Seconds for the message content.'),
        maxSessionTime: seconds
          .default(SUBMISSION_LIMIT_DEFAULTS.maxSessionTime)
          .describe('Longest session, seconds.'),
      })
      .strict()
      .default(SUBMISSION_LIMIT_DEFAULTS)
      .describe('Per-session limits (per replica).'),
    autoconfig: z
      .object({
        listen: listen.describe(
          'Where the HTTPS endpoint listens (behind autoconfig.<domain> and autodiscover.<domain>).',
        ),
        displayName: z.string().min(1).max(100).default('Mail').describe('Provider name mail clients show.'),
        submissionHost: hostname
          .optional()
          .describe('Host name clients send to (must be in the TLS certificate; default: hostname).'),
        imapHost: hostname.optional().describe("The organisation's IMAP host, when it has one."),
        imapPort: port.default(993).describe('IMAP port (implicit TLS).'),
        certFile: z.string().optional().describe('PEM certificate for HTTPS (default: submission.tls).'),
        keyFile: z.string().optional().describe('PEM key of certFile.'),
      })
      .strict()
      .optional()
      .describe(
        'Client autoconfiguration (Mozilla autoconfig, Autodiscover, Apple .mobileconfig) over HTTPS.',
      ),
  })
  .strict()
  .superRefine((s, ctx) => {
    const tls = s.tls;
    if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls', tls.certFile === undefined ? 'certFile' : 'keyFile'],
        message: 'missing: certFile and keyFile go together — set both',
      });
    } else if (tls.certFile === undefined && !tls.selfSigned) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls', 'certFile'],
        message:
          'missing: AUTH needs TLS — set submission.tls.certFile and keyFile (or selfSigned: true for a test setup)',
      });
    }
    const a = s.autoconfig;
    if (a && (a.certFile === undefined) !== (a.keyFile === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['autoconfig', a.certFile === undefined ? 'certFile' : 'keyFile'],
        message: 'missing: certFile and keyFile go together — set both, or neither (submission.tls is used)',
      });
    }
    const names = new Set<string>();
    for (const [i, c] of (s.relay?.clients ?? []).entries()) {
      if (names.has(c.name))
        ctx.addIssue({
          code: 'custom',
          path: ['relay', 'clients', i, 'name'],
          message: `${c.name} is listed twice — give each relay client its own name`,
        });
      names.add(c.name);
    }
  });

/** The daily TLS-RPT aggregate reports (RFC 8460) the egress sends to policy domains. */
const TLS_REPORTS_DEFAULTS = { enabled: false, hour: 1, flushInterval: 60 };
const tlsReportsSchema = z
  .object({
    enabled: z
      .boolean()
      .default(false)
      .describe(
        'Record DANE/MTA-STS session results per policy domain and send each domain that publishes a _smtp._tls TXT record (v=TLSRPTv1) its daily report (RFC 8460). Needs egress.dnsResolver.',
      ),
    organizationName: z
      .string()
      .min(1)
      .max(200)
      .refine((s) => !/[\r\n\0]/.test(s), 'no CR, LF or NUL')
      .optional()
      .describe('"organization-name" of the reports (RFC 8460 §4.4); default: domains.primary.'),
    contact: z
      .string()
      .min(1)
      .max(200)
      .refine((s) => !/[\r\n\0]/.test(s), 'no CR, LF or NUL')
      .optional()
      .describe(
        '"contact-info" of the reports, e.g. mailto:tlsrpt@example.org; default: postmaster@domains.primary.',
      ),
    submitter: hostname
      .optional()
      .describe("TLS-Report-Submitter and the file name's sender (RFC 8460 §5.3); default: domains.primary."),
    from: z
      .string()
      .max(254)
      .optional()
      .describe('From: of the report messages; default: noreply-tlsrpt@domains.primary.'),
    hour: z
      .number()
      .int()
      .min(0)
      .max(23)
      .default(1)
      .describe("UTC hour after which yesterday's reports are sent (one replica sends each)."),
    flushInterval: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .default(60)
      .describe('How often each replica adds its counted results to the shared store, seconds.'),
  })
  .strict()
  .default(TLS_REPORTS_DEFAULTS)
  .describe('TLS-RPT (RFC 8460): daily aggregate reports of outbound DANE/MTA-STS results.');

export const configSchema = z
  .object({
    hostname: hostname
      .default('localhost')
      .describe('Our SMTP host name: banner, EHLO, Received and Authentication-Results authserv-id.'),
    instance: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, 'a name of letters, digits, `_`, `.` and `-`')
      .optional()
      .describe('Name of this process in logs, traces and the timeline (default: host name + pid).'),
    processes: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(1)
      .describe(
        'Processes of `sluice run` (or of one service), each running every service of the command and sharing NATS and the SMTP ports (SO_REUSEPORT, Linux): how one machine uses more than one core. Each process has its own memory (~150-300 MB). Worker N serves http.listen on port + N. On Kubernetes keep 1 and scale replicas.',
      ),
    domains: z
      .object({
        primary: domain.describe('The primary mail domain.'),
        aliases: z
          .array(domain)
          .default([])
          .describe('Alias domains: user@alias is treated as user@primary.'),
      })
      .strict()
      .describe('The domains we receive mail for.'),
    routing: z
      .object({
        aliases: z
          .record(addressKey, z.array(address).min(1))
          .default({})
          .describe(
            'Aliases: an address of ours -> one or more addresses (ours or outside), expanded recursively. A key `@domain` is the catch-all of that domain (used when an address has no rule of its own).',
          ),
        forwards: z
          .record(address, z.array(address).min(1))
          .default({})
          .describe('Forwards: an address of ours -> outside mailboxes (Gmail, Riseup, ...).'),
        reject: z
          .record(
            address,
            z
              .string()
              .min(1)
              .max(200)
              .regex(/^[\x20-\x7e]+$/, 'printable ASCII text'),
          )
          .default({})
          .describe(
            'Reject entries: an address of ours -> the text refused with (550 5.1.1 at RCPT). Applies before aliases and forwards.',
          ),
        plusSeparator: z
          .string()
          .max(1)
          .regex(/^[^@\s"]?$/, 'one character that is not @, a quote or a space')
          .default('+')
          .describe(
            'Plus-addressing separator: user+tag@ resolves as user@ (the tag is kept on a mailbox address). Empty: off.',
          ),
        maxDepth: z
          .number()
          .int()
          .min(1)
          .max(100)
          .default(10)
          .describe('Alias expansion depth limit (loops are cut).'),
        reload: z
          .boolean()
          .default(true)
          .describe(
            'Watch the config file and apply a changed routing (domains, routing, transports, relay) without a restart; an invalid file is refused and the old table keeps serving.',
          ),
        ldap: ldapSchema
          .optional()
          .describe('An LDAP directory as a routing source (userdir-ldap style: uid -> emailForward).'),
      })
      .strict()
      .default({ aliases: {}, forwards: {}, reject: {}, plusSeparator: '+', maxDepth: 10, reload: true })
      .describe('Address routing: aliases, forwards, reject entries, plus-addressing, and LDAP.'),
    transports: z
      .record(z.union([address, domain]), transportSchema)
      .default({})
      .describe(
        "Next hops overriding MX lookup, per destination domain or per address (user@domain: that one mailbox goes elsewhere, e.g. an LMTP server); an address entry wins over its domain's.",
      ),
    relay: transportSchema
      .optional()
      .describe('Smarthost for every destination without a transport (no MX lookup).'),
    submission: submissionSchema
      .optional()
      .describe(
        'The submission service (docs/submission.md): authenticated sending for people on 587 (STARTTLS) and 465 (implicit TLS), and the mutual-TLS relay door for internal hosts. Absent: not run.',
      ),
    nats: z
      .object({
        servers: z
          .array(z.string().min(1))
          .default([])
          .describe('NATS server URLs. Empty: `sluice run` starts an embedded nats-server.'),
        user: z.string().optional().describe('NATS user name (with password).'),
        password: secretSchema.optional().describe('NATS password (secret).'),
        token: secretSchema
          .optional()
          .describe('NATS authentication token (secret), instead of user/password.'),
        replicas: z
          .number()
          .int()
          .min(1)
          .max(5)
          .default(1)
          .describe('JetStream replicas (1 locally, 3 in a cluster).'),
        embedded: z
          .object({
            binary: z.string().default('nats-server').describe('Path or name of the nats-server binary.'),
            host: z
              .string()
              .default('127.0.0.1')
              .describe('Address the embedded server binds (client port).'),
            port: port.default(4222).describe('Client port of the embedded server.'),
            dataDir: z.string().default('.sluice/nats').describe('JetStream store directory.'),
            syncAlways: z
              .boolean()
              .default(true)
              .describe('fsync every JetStream write (sync_interval: always) where the server supports it.'),
          })
          .strict()
          .default({
            binary: 'nats-server',
            host: '127.0.0.1',
            port: 4222,
            dataDir: '.sluice/nats',
            syncAlways: true,
          })
          .describe('The nats-server child that `sluice run` starts when nats.servers is empty.'),
      })
      .strict()
      .default({
        servers: [],
        replicas: 1,
        embedded: {
          binary: 'nats-server',
          host: '127.0.0.1',
          port: 4222,
          dataDir: '.sluice/nats',
          syncAlways: true,
        },
      })
      .describe('Connection to NATS JetStream, the queue and state store of every service.'),
    bus: z
      .object({
        inlineMaxBytes: z
          .number()
          .int()
          .min(1024)
          .default(256 * 1024)
          .describe(
            'Bodies up to this size travel inside the envelope message; larger ones go to the object store.',
          ),
        queueLifetime: seconds
          .default(5 * 86400)
          .describe('Maximum time a message may stay queued (retry lifetime), seconds.'),
        retentionMargin: z
          .number()
          .nonnegative()
          .default(2 * 86400)
          .describe('Streams keep messages this long beyond queueLifetime, seconds (never shorter).'),
        duplicateWindow: seconds
          .default(1200)
          .describe('JetStream duplicate window for Nats-Msg-Id dedup, seconds.'),
        ackWait: seconds
          .default(60)
          .describe('How long a stage may hold a message before redelivery, seconds.'),
        maxDeliver: z
          .number()
          .int()
          .min(2)
          .default(50)
          .describe('Deliveries of one message to a stage before it is dead-lettered.'),
        publishTimeout: seconds.default(10).describe('How long to wait for a PubAck, seconds.'),
        inProcessHandover: z
          .boolean()
          .default(true)
          .describe(
            'When stages run in one process (`sluice run`): requests to a service in the same process (verdict, RCPT lookup) are answered there, and the resolver hands each part to the rewriter directly (the rewrite stream is used only when that fails). Guarantees unchanged (docs/decisions/0046). false: every hop goes through NATS.',
          ),
        maxBytesPerStream: z
          .number()
          .int()
          .refine((n) => n === -1 || n > 0, 'either -1 (unlimited) or a positive number of bytes')
          .default(-1)
          .describe(
            'Size cap of each work stream in bytes, overriding its share of bus.store.budget (-1: use the share). New messages are refused when full.',
          ),
        store: z
          .object({
            budget: z
              .number()
              .int()
              .nonnegative()
              .default(0)
              .describe(
                'Bytes of JetStream storage Sluice may use, divided among its streams, object store and buckets (docs/decisions/0008). 0: automatic (embedded: bus.store.freeSpaceFraction of the free space of the store disk at start; remote NATS: the account limit, else 4 GiB).',
              ),
            freeSpaceFraction: z
              .number()
              .gt(0)
              .max(0.95)
              .default(0.5)
              .describe(
                'With budget 0 and the embedded server: the fraction of the store disk free space at start that becomes the budget.',
              ),
            minFreeBytes: z
              .number()
              .int()
              .nonnegative()
              .default(64 * 1024 * 1024)
              .describe(
                'Free-space guard: when the store disk (embedded) or the budget (remote) has less than this left, the ingress answers 452 4.3.1 before JetStream runs out.',
              ),
          })
          .strict()
          .default({ budget: 0, freeSpaceFraction: 0.5, minFreeBytes: 64 * 1024 * 1024 })
          .describe('The JetStream storage budget and the free-space guard.'),
      })
      .strict()
      .default({
        inlineMaxBytes: 256 * 1024,
        queueLifetime: 5 * 86400,
        retentionMargin: 2 * 86400,
        duplicateWindow: 1200,
        ackWait: 60,
        maxDeliver: 50,
        publishTimeout: 10,
        inProcessHandover: true,
        maxBytesPerStream: -1,
        store: { budget: 0, freeSpaceFraction: 0.5, minFreeBytes: 64 * 1024 * 1024 },
      })
      .describe('JetStream streams, consumers and message bodies.'),
    ingress: z
      .object({
        listen: z
          .array(listen)
          .min(1)
          .default([{ host: '0.0.0.0', port: 25 }])
          .describe('SMTP listeners of the MX.'),
        maxMessageBytes: z
          .number()
          .int()
          .min(1024)
          .default(50 * 1024 * 1024)
          .describe('SIZE limit (RFC 1870); larger messages get 552 5.3.4.'),
        maxRecipients: z
          .number()
          .int()
          .min(1)
          .default(100)
          .describe('Recipients per message (RFC 5321 §4.5.3.1.8).'),
        filterTimeout: seconds.default(30).describe('Wait for the before-queue verdict, seconds; then 451.'),
        lookupTimeout: seconds
          .default(5)
          .describe('Wait for the RCPT-time resolver lookup, seconds; then 451.'),
        socketTimeout: seconds
          .default(300)
          .describe('Idle timeout of an SMTP session, seconds (RFC 5321 §4.5.3.2).'),
        maxClients: z.number().int().min(1).default(1000).describe('Concurrent SMTP sessions per process.'),
        greetDelay: z
          .number()
          .min(0)
          .max(30)
          .default(0)
          .describe(
            'Seconds to wait before the greeting; a client talking before it gets 421 (early-talker check). 0: greet at once (trusted networks always are).',
          ),
        trustedNetworks: z
          .array(z.string().min(1))
          .default([])
          .describe(
            'CIDRs exempt from the greeting delay and the per-client connection limits (e.g. 10.0.0.0/8).',
          ),
        proxyFrom: z
          .array(z.string().min(1))
          .default([])
          .describe(
            'CIDRs of load balancers whose connections start with a PROXY protocol v1 or v2 header; from anywhere else a PROXY header is refused.',
          ),
        tls: z
          .object({
            certFile: z
              .string()
              .optional()
              .describe('PEM certificate chain for STARTTLS; reloaded when the file changes.'),
            keyFile: z
              .string()
              .optional()
              .describe('PEM private key for STARTTLS; reloaded when the file changes.'),
            selfSigned: z
              .boolean()
              .default(false)
              .describe(
                'Without certFile/keyFile: generate a self-signed certificate at first start in generatedDir.',
              ),
            generatedDir: z
              .string()
              .default('.sluice/tls')
              .describe('Where the self-signed certificate is kept.'),
          })
          .strict()
          .default({ selfSigned: false, generatedDir: '.sluice/tls' })
          .describe('STARTTLS (RFC 3207), TLS 1.2 or later. Without a certificate STARTTLS is not offered.'),
        limits: z
          .object({
            perIp: z.number().int().min(1).default(20).describe('Concurrent sessions per client IP address.'),
            perNet: z
              .number()
              .int()
              .min(1)
              .default(60)
              .describe('Concurrent sessions per client IPv4 /24 or IPv6 /64.'),
            sessionsPerMinute: z
              .number()
              .int()
              .min(0)
              .default(0)
              .describe(
                'New sessions per client IP in each minute, counted across all ingress replicas (JetStream KV); over it 421 4.7.0. 0: no limit (as Postfix smtpd_client_connection_rate_limit).',
              ),
            softErrors: z
              .number()
              .int()
              .min(1)
              .default(3)
              .describe(
                'Errors in a session after which every further error reply is delayed (1 s, growing).',
              ),
            hardErrors: z
              .number()
              .int()
              .min(1)
              .default(20)
              .describe('Errors in a session before 421 4.7.0 and disconnect.'),
            unknownRecipients: z
              .number()
              .int()
              .min(1)
              .default(20)
              .describe('Unknown recipients in a session before 421 4.7.0 and disconnect.'),
            commandTimeout: seconds
              .default(300)
              .describe(
                'A whole command must arrive within this many seconds of our last reply (trickling does not reset it).',
              ),
            dataTimeout: seconds
              .default(600)
              .describe('The whole message content must arrive within this many seconds.'),
            maxSessionTime: seconds.default(1800).describe('Longest SMTP session, seconds; then 421 4.4.2.'),
          })
          .strict()
          .default({
            perIp: 20,
            perNet: 60,
            sessionsPerMinute: 0,
            softErrors: 3,
            hardErrors: 20,
            unknownRecipients: 20,
            commandTimeout: 300,
            dataTimeout: 600,
            maxSessionTime: 1800,
          })
          .describe('Per-client and per-session limits of the MX (per replica, except sessionsPerMinute).'),
        tarpit: z
          .object({
            delay: z
              .number()
              .min(0)
              .max(60)
              .default(0)
              .describe('Seconds to wait before each slowed RCPT reply; 0: no tarpit.'),
            afterUnknownRecipients: z
              .number()
              .int()
              .min(0)
              .default(3)
              .describe('Slow every RCPT reply of a session after this many unknown recipients in it.'),
            networks: z
              .array(z.string().min(1))
              .default([])
              .describe('CIDRs whose every RCPT reply is slowed (e.g. networks known for harvesting).'),
          })
          .strict()
          .default({ delay: 0, afterUnknownRecipients: 3, networks: [] })
          .describe('RCPT tarpit against address harvesting (docs/ingress.md).'),
        drainTimeout: seconds
          .default(30)
          .describe('On SIGTERM: how long sessions in a transaction may take to finish before they are cut.'),
        maxBodyBytesInFlight: z
          .number()
          .int()
          .min(64 * 1024)
          .default(256 * 1024 * 1024)
          .describe(
            'Bytes of message bodies one ingress process holds in memory at once (small bodies whole, large ones only the chunks on their way to the object store); a DATA that would go over gets 452 4.3.1. At least bus.inlineMaxBytes + 384 KiB (checked at start).',
          ),
      })
      .strict()
      .default({
        listen: [{ host: '0.0.0.0', port: 25 }],
        maxMessageBytes: 50 * 1024 * 1024,
        maxRecipients: 100,
        filterTimeout: 30,
        lookupTimeout: 5,
        socketTimeout: 300,
        maxClients: 1000,
        greetDelay: 0,
        trustedNetworks: [],
        proxyFrom: [],
        tls: { selfSigned: false, generatedDir: '.sluice/tls' },
        limits: {
          perIp: 20,
          perNet: 60,
          sessionsPerMinute: 0,
          softErrors: 3,
          hardErrors: 20,
          unknownRecipients: 20,
          commandTimeout: 300,
          dataTimeout: 600,
          maxSessionTime: 1800,
        },
        tarpit: { delay: 0, afterUnknownRecipients: 3, networks: [] },
        drainTimeout: 30,
        maxBodyBytesInFlight: 256 * 1024 * 1024,
      })
      .describe('The MX: SMTP from the internet.'),
    filter: z
      .object({
        authservId: z
          .string()
          .optional()
          .describe('authserv-id in Authentication-Results (default: hostname).'),
        concurrency: z.number().int().min(1).default(32).describe('Verdicts computed at once per process.'),
        maxQueued: z
          .number()
          .int()
          .min(0)
          .optional()
          .describe(
            'Verdict requests waiting per process (default 2 × concurrency); more are answered busy (docs/filter.md).',
          ),
        weights: ruleWeights,
        actions: filterActions,
        antiSpoofing: z
          .object({
            action: z
              .enum(['reject', 'score'])
              .default('reject')
              .describe(
                'A From: in one of our domains, from the MX door, without DMARC pass: reject outright, or add the FROM_OURS_UNAUTHENTICATED weight.',
              ),
          })
          .strict()
          .default({ action: 'reject' })
          .describe('Spoofing of our own domains (docs/filter.md).'),
        dnsbl: z
          .object({
            ipZones: z
              .array(dnsZoneWeight)
              .default([])
              .describe(
                'DNSBLs queried with the client IP (RFC 5782 §2.1), each with the weight of a listing.',
              ),
            uriZones: z
              .array(dnsZoneWeight)
              .default([])
              .describe('URIBLs queried with the host names of links in the message (RFC 5782 §2.2).'),
            timeout: seconds
              .default(2)
              .describe('Wait for all list answers, seconds; then the lists are skipped.'),
            cacheSeconds: seconds.default(300).describe('How long a list answer is reused, seconds.'),
            maxUris: z.number().int().min(0).default(20).describe('Link host names looked up per message.'),
          })
          .strict()
          .default({ ipZones: [], uriZones: [], timeout: 2, cacheSeconds: 300, maxUris: 20 })
          .describe('DNS block lists for the client IP and for links.'),
        greylist: z
          .object({
            enabled: z
              .boolean()
              .default(false)
              .describe('Greylist messages scoring at or above actions.greylist.'),
            delay: seconds
              .default(300)
              .describe('A retry earlier than this, seconds after the first attempt, is greylisted again.'),
            retryWindow: seconds
              .default(4 * 3600)
              .describe('A retry later than delay + retryWindow starts over, seconds.'),
            ttl: seconds
              .default(36 * 86400)
              .describe('How long a triplet that passed stays allowed (KV bucket max age), seconds.'),
            goodSenders: z
              .array(z.string().min(1))
              .default([])
              .describe('Senders never greylisted: "user@domain" or "domain" (MAIL FROM).'),
          })
          .strict()
          .default({ enabled: false, delay: 300, retryWindow: 4 * 3600, ttl: 36 * 86400, goodSenders: [] })
          .describe('Greylisting of (client network, sender, recipient) triplets in a JetStream KV.'),
        rspamd: z
          .object({
            url: z
              .string()
              .url()
              .describe("Base URL of rspamd's normal worker, e.g. http://127.0.0.1:11333."),
            timeout: seconds.default(10).describe('Wait for rspamd, seconds.'),
            onFailure: engineFailure,
          })
          .strict()
          .optional()
          .describe('rspamd (HTTP /checkv2): its score and symbols are added to ours. Absent: not used.'),
        clamd: z
          .object({
            host: z.string().min(1).default('127.0.0.1').describe('clamd TCP host.'),
            port: z.number().int().min(1).max(65535).describe('clamd TCP port (TCPSocket).'),
            timeout: seconds.default(30).describe('Wait for clamd, seconds.'),
            onFailure: engineFailure,
          })
          .strict()
          .optional()
          .describe('clamd (INSTREAM) virus scanning; a virus is always rejected. Absent: not used.'),
      })
      .strict()
      .default({
        concurrency: 32,
        weights: ruleWeights.parse(undefined),
        actions: filterActions.parse(undefined),
        antiSpoofing: { action: 'reject' },
        dnsbl: { ipZones: [], uriZones: [], timeout: 2, cacheSeconds: 300, maxUris: 20 },
        greylist: { enabled: false, delay: 300, retryWindow: 4 * 3600, ttl: 36 * 86400, goodSenders: [] },
      })
      .describe('The before-queue filter: authentication, scoring, greylisting, engines (docs/filter.md).'),
    resolver: z
      .object({
        concurrency: z.number().int().min(1).default(32).describe('Envelopes resolved at once per process.'),
      })
      .strict()
      .default({ concurrency: 32 })
      .describe('The resolver: aliases, forwards and routes.'),
    rewriter: z
      .object({
        concurrency: z.number().int().min(1).default(32).describe('Envelopes rewritten at once per process.'),
        fromRewrite: z
          .object({
            enabled: z
              .boolean()
              .default(false)
              .describe(
                'Rewrite the From of forwarded mail from p=reject/quarantine domains (docs/srs.md). Off by default.',
              ),
            forwards: z
              .array(z.string().regex(/^(\*|[^@\s]+@[^@\s]+)$/, 'a forwarding address of ours, or "*"'))
              .default([])
              .describe(
                'Forward owners (addresses of ours whose forwards produced the recipients) that opt in; "*": all forwards.',
              ),
            address: z
              .string()
              .regex(/^[^@\s"<>]+@[a-z0-9.-]+$/i, 'an address of ours like noreply@example.org')
              .optional()
              .describe(
                "The new From address (one of our domains). Default: the forward owner's own address.",
              ),
            displayName: z
              .string()
              .regex(/^[^\r\n]*$/, 'one line')
              .default('{name} via {domain}')
              .describe(
                'Display name of the new From: {name} = original display name (or address), {domain} = our primary domain.',
              ),
          })
          .strict()
          .default({ enabled: false, forwards: [], displayName: '{name} via {domain}' })
          .describe('Optional From rewriting of forwards, as mailing lists do (RFC 7960 §4.1.3.1).'),
      })
      .strict()
      .default({
        concurrency: 32,
        fromRewrite: { enabled: false, forwards: [], displayName: '{name} via {domain}' },
      })
      .describe('The rewriter: SRS, DKIM signing, ARC sealing.'),
    srs: z
      .object({
        domain: z
          .string()
          .regex(/^[a-z0-9.-]+$/i, 'a domain name like srs.example.org')
          .optional()
          .describe(
            'Domain of SRS addresses (default: srs.<domains.primary>). Publish SPF for it and an MX pointing to us.',
          ),
        secrets: z
          .array(secretSchema)
          .default([])
          .describe(
            'HMAC secrets (each a secret; >= 16 random bytes): the first signs, all verify (rotation). Empty: no SRS.',
          ),
        maxAgeDays: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .default(21)
          .describe('SRS addresses older than this many days are refused (postsrsd: 21).'),
        hashLength: z
          .number()
          .int()
          .min(4)
          .max(27)
          .default(4)
          .describe('Hash characters in SRS addresses (postsrsd -n, default 4).'),
        separator: z
          .enum(['=', '+', '-'])
          .default('=')
          .describe('Character after SRS0/SRS1 (postsrsd -a, default "=").'),
        bounceLimit: z
          .object({
            perDomain: z
              .number()
              .int()
              .min(0)
              .default(100)
              .describe('Bounces accepted per original-sender domain per window; 0: no limit.'),
            windowSeconds: z.number().int().min(1).default(60).describe('The window, seconds.'),
          })
          .strict()
          .default({ perDomain: 100, windowSeconds: 60 })
          .describe(
            'Rate limit on bounces to our SRS addresses, per original-sender domain, in memory per resolver replica (R replicas: up to R x perDomain); over it RCPT gets 451 4.3.0.',
          ),
      })
      .strict()
      .default({
        secrets: [],
        maxAgeDays: 21,
        hashLength: 4,
        separator: '=',
        bounceLimit: { perDomain: 100, windowSeconds: 60 },
      })
      .describe(
        'Sender Rewriting Scheme for forwards (postsrsd-compatible); the resolver reverses bounces to SRS addresses.',
      ),
    dkim: z
      .object({
        keys: z
          .array(
            z
              .object({
                domain: z.string().min(1).describe('Signing domain (d=): one of our domains.'),
                selector: z
                  .string()
                  .regex(/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/i, 'a selector like 2026a or rsa1')
                  .describe('Selector (s=); the public key is published at <selector>._domainkey.<domain>.'),
                privateKey: secretSchema.describe('PEM private key, RSA (>= 2048 bits) or Ed25519 (secret).'),
                active: z
                  .boolean()
                  .default(true)
                  .describe('Signs new mail; at most one active key per domain and key type.'),
              })
              .strict(),
          )
          .default([])
          .describe('DKIM keys. A domain with an active RSA and an active Ed25519 key gets both signatures.'),
        headers: z
          .array(z.string().regex(/^[!-9;-~]+$/, 'a header field name'))
          .optional()
          .describe('Header fields to sign (default: docs/dkim.md); From is always signed and over-signed.'),
        expireDays: z
          .number()
          .int()
          .min(0)
          .default(0)
          .describe('x= of signatures, days after signing (0: no x= tag).'),
        dnsCheckInterval: z
          .number()
          .min(0)
          .default(3600)
          .describe(
            'Check active keys against their DNS records every N seconds (0: never); a mismatched key is not used.',
          ),
      })
      .strict()
      .default({ keys: [], expireDays: 0, dnsCheckInterval: 3600 })
      .describe('DKIM signing (rsa-sha256 and ed25519-sha256) of mail whose From is one of our domains.'),
    arc: z
      .object({
        domain: z.string().optional().describe('Sealing domain (default: domains.primary).'),
        selector: z
          .string()
          .optional()
          .describe(
            'Selector of the dkim.keys entry that seals (default: the active RSA key of the domain).',
          ),
        enabled: z.boolean().default(true).describe('Seal forwarded mail when a key is available.'),
      })
      .strict()
      .default({ enabled: true })
      .describe('ARC sealing (RFC 8617) of forwarded mail.'),
    egress: z
      .object({
        concurrency: z.number().int().min(1).default(32).describe('Deliveries in flight per process.'),
        heloName: z.string().optional().describe('EHLO name (default: hostname).'),
        connectTimeout: seconds.default(30).describe('TCP connect timeout per MX host, seconds.'),
        greetingTimeout: seconds.default(300).describe('RFC 5321 §4.5.3.2.1: 5 minutes.'),
        socketTimeout: seconds
          .default(600)
          .describe('RFC 5321 §4.5.3.2.6: 10 minutes for the final dot reply.'),
        retrySchedule: z
          .array(seconds)
          .min(1)
          .default([60, 300, 900, 1800, 3600, 7200, 14400])
          .describe('Delays between attempts, seconds; the last repeats until queueLifetime.'),
        requireTls: z.boolean().default(false).describe('Refuse to deliver in cleartext.'),
        ignoreTlsErrors: z
          .boolean()
          .default(true)
          .describe('Opportunistic STARTTLS: an unverifiable certificate still beats cleartext (RFC 7435).'),
        dnsResolver: z
          .string()
          .regex(
            /^(\[[0-9a-fA-F:]+\]|[0-9.]+)(:\d{1,5})?$/,
            'an IP address with an optional :port, e.g. 127.0.0.1:53',
          )
          .optional()
          .describe(
            'Validating DNSSEC resolver (ip or ip:port) whose AD bit the egress trusts for DANE (RFC 7672) and MTA-STS discovery. Must be local or on a trusted path. Without it outbound TLS stays opportunistic (no DANE, no MTA-STS).',
          ),
        mtaSts: z
          .object({
            enabled: z
              .boolean()
              .default(true)
              .describe('Apply MTA-STS policies (RFC 8461) where there is no DANE.'),
            caFile: z
              .string()
              .optional()
              .describe(
                'Extra CA certificates (PEM) for MTA-STS policy fetches and SMTP PKIX checks (tests, private CAs).',
              ),
            policyPort: z
              .number()
              .int()
              .min(1)
              .max(65535)
              .optional()
              .describe('TESTS ONLY: port of the policy host instead of 443.'),
            fetchTimeout: seconds
              .default(10)
              .describe('Policy fetch timeout, seconds (RFC 8461 §3.3 suggests 60 at most).'),
          })
          .strict()
          .default({ enabled: true, fetchTimeout: 10 })
          .describe('MTA-STS (RFC 8461): needs egress.dnsResolver for the _mta-sts TXT record.'),
        destinationConcurrency: z
          .number()
          .int()
          .min(1)
          .default(20)
          .describe(
            'SMTP/LMTP sessions open at once to one destination host, and delivery attempts at once to one destination (domain or transport), per process; more deliveries wait in the queue.',
          ),
        sessionIdleTimeout: z
          .number()
          .nonnegative()
          .default(5)
          .describe(
            'How long an idle session is kept for the next message to the same host, seconds (0: one per delivery).',
          ),
        attemptTimeout: seconds
          .default(1200)
          .describe(
            'Deadline of one whole delivery attempt (DNS, TLS policy, body, every session step), seconds: a server that trickles bytes to keep each step alive is still cut off (Postfix bounds only each step).',
          ),
        destinations: z
          .array(
            z
              .object({
                match: z
                  .string()
                  .regex(
                    /^(\*\.)?[A-Za-z0-9_.:[\]-]+$/,
                    "a destination name ('gmail.com', '[relay.example]:587') or '*.' and a parent domain",
                  )
                  .describe(
                    "The destination: a recipient domain delivered by MX ('gmail.com'), '*.outlook.com' for every subdomain, or a transport as '[host]:port'.",
                  ),
                maxConcurrency: z
                  .number()
                  .int()
                  .min(1)
                  .optional()
                  .describe(
                    'Delivery attempts at once to this destination, by all egress replicas together (each holds a share, renewed in NATS KV); default: destinationConcurrency, per process.',
                  ),
                ratePerMinute: z
                  .number()
                  .positive()
                  .optional()
                  .describe(
                    'Delivery attempts (transactions) started per minute to this destination, by all egress replicas together (start times leased in slices from NATS KV); the others wait in the queue.',
                  ),
              })
              .strict(),
          )
          .default([])
          .describe(
            'Per-destination limits of the delivery queue (docs/egress-queue.md), first match wins: gentle pacing towards large providers.',
          ),
        dsn: egressDsnSchema,
        forwardFailureNotice: forwardFailureNoticeSchema,
        tlsReports: tlsReportsSchema,
      })
      .strict()
      .default({
        dsn: EGRESS_DSN_DEFAULTS,
        forwardFailureNotice: FORWARD_FAILURE_NOTICE_DEFAULTS,
        tlsReports: TLS_REPORTS_DEFAULTS,
        concurrency: 32,
        connectTimeout: 30,
        greetingTimeout: 300,
        socketTimeout: 600,
        retrySchedule: [60, 300, 900, 1800, 3600, 7200, 14400],
        requireTls: false,
        ignoreTlsErrors: true,
        mtaSts: { enabled: true, fetchTimeout: 10 },
        destinationConcurrency: 20,
        sessionIdleTimeout: 5,
        attemptTimeout: 1200,
        destinations: [],
      })
      .describe('Outbound delivery: SMTP/LMTP to the next hop, retries.'),
    dns: z
      .object({
        servers: z
          .array(z.string())
          .default([])
          .describe('DNS resolvers as ip or ip:port (default: the system resolver).'),
        timeout: seconds.default(5).describe('Per-query timeout, seconds.'),
        cacheMaxTtl: z
          .number()
          .int()
          .min(0)
          .default(300)
          .describe(
            "Filter (SPF, DKIM, DMARC, DNS lists): reuse DNS answers for their TTL, at most this many seconds; negative answers per the zone's SOA (RFC 2308 §5). 0 turns the cache off.",
          ),
      })
      .strict()
      .default({ servers: [], timeout: 5, cacheMaxTtl: 300 })
      .describe('DNS lookups (MX, SPF, DKIM, DMARC, TLSA, MTA-STS).'),
    log: z
      .object({
        level: z
          .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal'])
          .default('info')
          .describe('Lowest level written (JSON lines on stdout).'),
        addresses: z
          .enum(['clear', 'hash', 'drop'])
          .default('clear')
          .describe('How mail addresses and client IPs appear in logs and the timeline.'),
        hashKey: secretSchema
          .optional()
          .describe(
            'HMAC-SHA256 key (secret) for addresses: hash; required then. Keep it stable to correlate.',
          ),
      })
      .strict()
      .default({ level: 'info', addresses: 'clear' })
      .describe('Logs and how much of the mail traffic they reveal.'),
    telemetry: z
      .object({
        otlpEndpoint: z
          .url({ protocol: /^https?$/, error: 'an http(s) URL like http://otel-collector:4318' })
          .optional()
          .describe(
            'OTLP/HTTP (JSON) collector base URL; /v1/traces is appended. OTEL_EXPORTER_OTLP_ENDPOINT also works. ' +
              'Unset: no export, but trace ids still reach logs and other services.',
          ),
        serviceName: z
          .string()
          .min(1)
          .default('sluice')
          .describe('OpenTelemetry service.name of the exported spans.'),
      })
      .strict()
      .default({ serviceName: 'sluice' })
      .describe('Traces (OpenTelemetry).'),
    http: z
      .object({
        listen: listen.optional().describe('Metrics (/metrics) and health (/healthz, /readyz) endpoint.'),
        healthBusGrace: seconds
          .default(60)
          .describe(
            '/healthz fails once the NATS connection has been down this long, seconds ' +
              '(shorter outages only fail /readyz), so a supervisor restarts a process that lost its bus.',
          ),
      })
      .strict()
      .default({ healthBusGrace: 60 })
      .describe('The operations HTTP endpoint.'),
    events: z
      .object({
        retention: seconds.default(7 * 86400).describe('How long timeline events are kept, seconds.'),
      })
      .strict()
      .default({ retention: 7 * 86400 })
      .describe('The per-message timeline (`sluice trace`).'),
  })
  .strict()
  // Cross-key rules. `when` makes them run even when other keys have problems, so
  // one load reports everything; the value may then be partly invalid, hence the guards.
  .superRefine(
    (c, ctx) => {
      const log = c.log as Partial<typeof c.log> | undefined;
      if (log?.addresses === 'hash' && !log.hashKey) {
        ctx.addIssue({
          code: 'custom',
          path: ['log', 'hashKey'],
          message:
            'missing while log.addresses is "hash" — set a key: a string, { file: /path } or { env: NAME }',
        });
      }
      // Every egress retry is a JetStream redelivery, and the bus dead-letters a message
      // after bus.maxDeliver deliveries: the schedule must reach queueLifetime first.
      const bus = c.bus as Partial<typeof c.bus> | undefined;
      const egress = c.egress as Partial<typeof c.egress> | undefined;
      // The guard refuses new mail below minFreeBytes of the budget less its 10% reserve.
      const store = bus?.store as { budget?: number; minFreeBytes?: number } | undefined;
      if (
        typeof store?.budget === 'number' &&
        store.budget > 0 &&
        typeof store.minFreeBytes === 'number' &&
        store.budget * 0.9 <= store.minFreeBytes
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['bus', 'store', 'budget'],
          message: `${store.budget} bytes leave no room above bus.store.minFreeBytes (${store.minFreeBytes}) and the 10% reserve: every message would get 452 — raise the budget or lower minFreeBytes`,
        });
      }
      if (
        Array.isArray(egress?.retrySchedule) &&
        egress.retrySchedule.length > 0 &&
        typeof bus?.queueLifetime === 'number' &&
        typeof bus.maxDeliver === 'number'
      ) {
        const needed = attemptsWithin(egress.retrySchedule, bus.queueLifetime);
        if (needed >= bus.maxDeliver) {
          ctx.addIssue({
            code: 'custom',
            path: ['bus', 'maxDeliver'],
            message:
              `${bus.maxDeliver} deliveries end before egress.retrySchedule reaches bus.queueLifetime ` +
              `(${needed} attempts needed) — raise bus.maxDeliver above ${needed} or lengthen the schedule`,
          });
        }
      }
      // TLS-RPT needs the validating resolver: results exist only under DANE/MTA-STS, and rua is a TXT lookup.
      const tlsReports = (egress as { tlsReports?: { enabled?: unknown } } | undefined)?.tlsReports;
      if (tlsReports?.enabled === true && !egress?.dnsResolver) {
        ctx.addIssue({
          code: 'custom',
          path: ['egress', 'tlsReports', 'enabled'],
          message:
            'a validating resolver in egress.dnsResolver with it — set one, or turn TLS-RPT reports off',
        });
      }
      // Acks are one-way (docs/decisions/0010): a lost ack is a redelivery after ackWait, and the
      // stage's republish must still fall in the duplicate window to be dropped there.
      if (
        typeof bus?.duplicateWindow === 'number' &&
        typeof bus.ackWait === 'number' &&
        bus.duplicateWindow <= bus.ackWait
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['bus', 'duplicateWindow'],
          message:
            `${bus.duplicateWindow} s is not longer than bus.ackWait (${bus.ackWait} s): a redelivered message's ` +
            'republish would not be deduplicated — make the duplicate window longer than ackWait',
        });
      }
      // A rewritten From must be of one of our domains, or DMARC cannot align it with our signature.
      const fromRewrite = (c.rewriter as { fromRewrite?: { address?: unknown } } | undefined)?.fromRewrite;
      const ourDomainsCfg = c.domains as { primary?: unknown; aliases?: unknown } | undefined;
      if (typeof fromRewrite?.address === 'string' && typeof ourDomainsCfg?.primary === 'string') {
        const ours = [
          ourDomainsCfg.primary,
          ...(Array.isArray(ourDomainsCfg.aliases) ? ourDomainsCfg.aliases : []),
        ].map((d) => String(d).toLowerCase());
        const domain = fromRewrite.address.slice(fromRewrite.address.lastIndexOf('@') + 1).toLowerCase();
        if (!ours.includes(domain)) {
          ctx.addIssue({
            code: 'custom',
            path: ['rewriter', 'fromRewrite', 'address'],
            message: `${domain} is not one of domains.primary/aliases — use an address of ours (DMARC must align with our DKIM)`,
          });
        }
      }
      // A client certificate needs its key, and a key its certificate.
      const hops: [string[], unknown][] = Object.entries((c.transports ?? {}) as Record<string, unknown>).map(
        ([k, v]) => [['transports', k], v],
      );
      if (c.relay) hops.push([['relay'], c.relay]);
      for (const [path, hop] of hops) {
        const h = hop as { clientCert?: unknown; clientKey?: unknown } | undefined;
        if (!h || (h.clientCert === undefined) === (h.clientKey === undefined)) continue;
        const missing = h.clientCert === undefined ? 'clientCert' : 'clientKey';
        ctx.addIssue({
          code: 'custom',
          path: [...path, missing],
          message: `missing: clientCert and clientKey go together — set ${missing} too, or remove the other`,
        });
      }
      // Between two refreshes the snapshot ages by refreshInterval: a bound below it would
      // tempfail lookups while LDAP is fine.
      const ldap = (c.routing as Partial<typeof c.routing> | undefined)?.ldap as
        | { maxStaleness?: unknown; refreshInterval?: unknown }
        | undefined;
      if (
        typeof ldap?.maxStaleness === 'number' &&
        typeof ldap.refreshInterval === 'number' &&
        ldap.maxStaleness <= ldap.refreshInterval
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['routing', 'ldap', 'maxStaleness'],
          message: `${ldap.maxStaleness} s is not above routing.ldap.refreshInterval (${ldap.refreshInterval} s) — lookups would tempfail between refreshes; raise it (a few refresh intervals at least)`,
        });
      }
      // Submission authenticates against a directory: its own or the routing one.
      const sub = c.submission as { auth?: { ldap?: unknown } } | undefined;
      const routingLdap = (c.routing as { ldap?: unknown } | undefined)?.ldap;
      if (sub?.auth && sub.auth.ldap === undefined && routingLdap === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['submission', 'auth', 'ldap'],
          message:
            'missing: submission needs a directory for its credentials — set submission.auth.ldap, or routing.ldap',
        });
      }
      const domains = c.domains as Partial<typeof c.domains> | undefined;
      if (typeof domains?.primary !== 'string') return;
      const ours = [domains.primary, ...(Array.isArray(domains.aliases) ? domains.aliases : [])];
      const listed = [...new Set(ours)].join(', ');
      const dup = ours.find((d, i) => ours.indexOf(d) !== i);
      if (dup) {
        ctx.addIssue({
          code: 'custom',
          path: ['domains'],
          message: `domain ${dup} is listed twice — list each domain once (primary or alias)`,
        });
      }
      // A DKIM key signs only for our domains; a selector is listed once per domain.
      const dkim = c.dkim as Partial<typeof c.dkim> | undefined;
      const selectors = new Set<string>();
      (Array.isArray(dkim?.keys) ? dkim.keys : []).forEach((k, i) => {
        if (typeof k?.domain !== 'string') return;
        const domain = k.domain.toLowerCase();
        if (!ours.includes(domain)) {
          ctx.addIssue({
            code: 'custom',
            path: ['dkim', 'keys', i, 'domain'],
            message: `${k.domain} is not one of our domains — sign only for ${listed}`,
          });
        }
        const id = `${k.selector}._domainkey.${domain}`;
        if (selectors.has(id)) {
          ctx.addIssue({
            code: 'custom',
            path: ['dkim', 'keys', i, 'selector'],
            message: `${id} is listed twice — give each key its own selector`,
          });
        }
        selectors.add(id);
      });
      // An alias or forward for a domain that is not ours never matches: a typo, caught here.
      const routing = c.routing as Partial<typeof c.routing> | undefined;
      for (const table of ['aliases', 'forwards', 'reject'] as const) {
        const entries = routing?.[table];
        if (!entries || typeof entries !== 'object') continue;
        for (const key of Object.keys(entries)) {
          const domain = key.slice(key.lastIndexOf('@') + 1);
          if (!ours.includes(domain)) {
            ctx.addIssue({
              code: 'custom',
              path: ['routing', table, key],
              message: `${domain} is not one of our domains — use ${listed}, or add it to domains.aliases`,
            });
          }
        }
      }
    },
    { when: () => true },
  );

/** How many delivery attempts a retry schedule makes within `lifetime` seconds (the last delay repeats). */
export function attemptsWithin(schedule: number[], lifetime: number): number {
  let attempts = 1;
  let elapsed = 0;
  while (elapsed < lifetime && attempts < 1_000_000) {
    const delay = schedule[Math.min(attempts - 1, schedule.length - 1)]!;
    if (!(delay > 0)) return Number.POSITIVE_INFINITY;
    elapsed += delay;
    attempts++;
  }
  return attempts;
}

/** The config as written in YAML (before defaults and secret resolution). */
export type ConfigInput = z.input<typeof configSchema>;
/** The validated config with defaults applied. Secrets are still `secret` values here. */
type ParsedConfig = z.output<typeof configSchema>;
type SecretRef = { file: string } | { env: string };
/** Secret references become strings; everything else keeps its type (enums stay literal unions). */
type ResolveSecrets<T> = T extends SecretRef
  ? string
  : T extends string | number | boolean | null | undefined
    ? T
    : T extends (infer U)[]
      ? ResolveSecrets<U>[]
      : T extends object
        ? { [K in keyof T]: ResolveSecrets<T[K]> }
        : T;
/** What services receive: validated, defaults applied, secrets resolved to strings. */
export type SluiceConfig = ResolveSecrets<ParsedConfig>;
