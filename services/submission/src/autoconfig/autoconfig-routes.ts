/**
 * What the autoconfig endpoint answers, as a pure function of the request
 * (method, path, query, body): the server around it only moves bytes. Paths
 * are the ones the clients ask for:
 *
 * - GET /mail/config-v1.1.xml and /.well-known/autoconfig/mail/config-v1.1.xml
 *   (?emailaddress=, optional): Mozilla clientConfig (Thunderbird & co.).
 * - POST /autodiscover/autodiscover.xml: Microsoft Autodiscover (Outlook).
 * - GET /autodiscover/autodiscover.json?Email=&Protocol= and
 *   /autodiscover/autodiscover.json/v1.0/<address>?Protocol=: Autodiscover v2.
 * - GET /apple/mobileconfig?emailaddress=: the Apple profile.
 *
 * An address outside the configured domains is 404 whatever the document, a
 * malformed one 400; neither is echoed back.
 */
import { appleMobileconfigFor, MOBILECONFIG_CONTENT_TYPE, NoIncomingServer } from './apple-mobileconfig.ts';
import type { ResolvedAutoconfig } from './autoconfig-options.ts';
import {
  AUTODISCOVER_XML_PATH,
  autodiscoverJson,
  autodiscoverXmlFor,
  OUTLOOK_RESPONSE_SCHEMA,
} from './autodiscover.ts';
import { parseAutodiscoverRequest } from './autodiscover-request.ts';
import { addressInDomains, type CheckedAddress } from './mail-address.ts';
import { mozillaAutoconfigXmlFor } from './mozilla-autoconfig.ts';

export interface AutoconfigRequest {
  method: string;
  /** The path, without the query. */
  path: string;
  query: URLSearchParams;
  /** The Host header (autoconfig.<domain> or <domain>), naming the domain when no address is given. */
  host?: string;
  /** The request body (POST only), already size-capped. */
  body?: string;
}

export interface AutoconfigAnswer {
  status: number;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
  /** For the log: which document was asked for, and for which domain (never the address). */
  route: string;
  domain?: string;
}

/** Which route a request goes to and the methods it takes; undefined for an unknown path. */
export function routeOf(path: string): { route: Route; methods: readonly string[] } | undefined {
  const p = path.toLowerCase();
  if (p === '/mail/config-v1.1.xml' || p === '/.well-known/autoconfig/mail/config-v1.1.xml') {
    return { route: 'mozilla', methods: READ };
  }
  if (p === AUTODISCOVER_XML_PATH) return { route: 'autodiscover', methods: ['POST'] };
  if (p === '/autodiscover/autodiscover.json' || p.startsWith('/autodiscover/autodiscover.json/v1.0/')) {
    return { route: 'autodiscover-json', methods: READ };
  }
  if (p === '/apple/mobileconfig') return { route: 'mobileconfig', methods: READ };
  return undefined;
}

export type Route = 'mozilla' | 'autodiscover' | 'autodiscover-json' | 'mobileconfig';
const READ = ['GET', 'HEAD'] as const;

const TEXT = 'text/plain; charset=utf-8';

function text(status: number, route: string, body: string, domain?: string): AutoconfigAnswer {
  return { status, contentType: TEXT, body: `${body}\n`, route, ...(domain ? { domain } : {}) };
}

/** A query parameter by name, ignoring case (Autodiscover v2 says "Email", Thunderbird "emailaddress"). */
function param(query: URLSearchParams, name: string): string | undefined {
  for (const [k, v] of query) if (k.toLowerCase() === name) return v;
  return undefined;
}

type Checked = { ok: true; address: CheckedAddress } | { ok: false; answer: AutoconfigAnswer };

function check(c: ResolvedAutoconfig, route: string, raw: string | undefined): Checked {
  if (raw === undefined) return { ok: false, answer: text(400, route, 'no email address given') };
  const r = addressInDomains(raw, c.domains);
  if (!r.ok) return { ok: false, answer: text(r.status, route, r.status === 404 ? 'not found' : r.reason) };
  return { ok: true, address: r.value };
}

/** The configured domain a Host header names (autoconfig.example.org or example.org), if any. */
function domainOfHost(c: ResolvedAutoconfig, host: string | undefined): string | undefined {
  const name = host
    ?.toLowerCase()
    .replace(/:\d+$/, '')
    .replace(/^autoconfig\./, '');
  return name !== undefined && c.domains.includes(name) ? name : undefined;
}

function mozilla(c: ResolvedAutoconfig, req: AutoconfigRequest): AutoconfigAnswer {
  const raw = param(req.query, 'emailaddress');
  let domain = domainOfHost(c, req.host);
  if (raw !== undefined && raw !== '') {
    const checked = check(c, 'mozilla', raw);
    if (!checked.ok) return checked.answer;
    domain = checked.address.domain;
  }
  return {
    status: 200,
    contentType: 'application/xml; charset=utf-8',
    body: mozillaAutoconfigXmlFor(c, domain),
    route: 'mozilla',
    ...(domain ? { domain } : {}),
  };
}

function autodiscover(c: ResolvedAutoconfig, req: AutoconfigRequest): AutoconfigAnswer {
  const parsed = parseAutodiscoverRequest(req.body ?? '');
  if (!parsed.ok) return text(400, 'autodiscover', `bad Autodiscover request: ${parsed.reason}`);
  const schema = parsed.acceptableResponseSchema;
  if (schema !== undefined && schema !== OUTLOOK_RESPONSE_SCHEMA) {
    // ActiveSync ("mobilesync") and other schemas describe Exchange services Sluice does not have.
    return text(404, 'autodiscover', `only ${OUTLOOK_RESPONSE_SCHEMA} is served`);
  }
  const checked = check(c, 'autodiscover', parsed.emailAddress);
  if (!checked.ok) return checked.answer;
  return {
    status: 200,
    contentType: 'text/xml; charset=utf-8',
    body: autodiscoverXmlFor(c, checked.address),
    route: 'autodiscover',
    domain: checked.address.domain,
  };
}

function autodiscoverV2(c: ResolvedAutoconfig, req: AutoconfigRequest): AutoconfigAnswer {
  const prefix = '/autodiscover/autodiscover.json/v1.0/';
  const fromPath = req.path.toLowerCase().startsWith(prefix) ? req.path.slice(prefix.length) : undefined;
  let raw: string | undefined;
  try {
    raw = fromPath !== undefined ? decodeURIComponent(fromPath) : param(req.query, 'email');
  } catch {
    return text(400, 'autodiscover-json', 'bad percent-encoding');
  }
  const checked = check(c, 'autodiscover-json', raw);
  if (!checked.ok) return checked.answer;
  const json = autodiscoverJson(checked.address, param(req.query, 'protocol') ?? '');
  return {
    status: json.status,
    contentType: 'application/json; charset=utf-8',
    body: `${JSON.stringify(json.body)}\n`,
    route: 'autodiscover-json',
    domain: checked.address.domain,
  };
}

function mobileconfig(c: ResolvedAutoconfig, req: AutoconfigRequest): AutoconfigAnswer {
  const checked = check(c, 'mobileconfig', param(req.query, 'emailaddress'));
  if (!checked.ok) return checked.answer;
  const { domain } = checked.address;
  try {
    return {
      status: 200,
      contentType: MOBILECONFIG_CONTENT_TYPE,
      body: appleMobileconfigFor(c, checked.address),
      headers: { 'content-disposition': `attachment; filename="${domain}.mobileconfig"` },
      route: 'mobileconfig',
      domain,
    };
  } catch (err) {
    if (!(err instanceof NoIncomingServer)) throw err;
    return text(
      404,
      'mobileconfig',
      'no Apple profile: this organisation has no IMAP server; set Mail up by hand',
      domain,
    );
  }
}

/** The answer to one request; the method is already one `routeOf` allows. */
export function answerAutoconfig(
  c: ResolvedAutoconfig,
  route: Route,
  req: AutoconfigRequest,
): AutoconfigAnswer {
  switch (route) {
    case 'mozilla':
      return mozilla(c, req);
    case 'autodiscover':
      return autodiscover(c, req);
    case 'autodiscover-json':
      return autodiscoverV2(c, req);
    case 'mobileconfig':
      return mobileconfig(c, req);
  }
}
