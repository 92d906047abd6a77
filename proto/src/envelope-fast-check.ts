/**
 * The envelope check of the decode path without zod, for the envelopes
 * stages actually exchange (decision 0039).
 *
 * `decodeEnvelope` (codec.ts) validates every envelope it reads against
 * `envelopeSchema`, four times per forwarded message; zod's parse copies
 * every level of the object and was ~3% of Sluice's CPU and ~10% of its
 * allocations in the bare-forwarding profile. This function checks the same
 * rules by hand on the object JSON.parse just made (nobody else holds it),
 * fills in the schema's defaults in place, and returns it: the result equals
 * zod's output (test: envelope-fast-check.test.ts compares both on valid
 * envelopes and on every field broken in several ways).
 *
 * It is never more permissive than the schema: whatever it is not sure of
 * (a field out of range, a wrong type, and the rarer parts it does not look
 * into, such as a TLS client certificate) makes it return undefined, and the
 * caller runs the schema, which accepts or refuses it with the usual errors.
 * Loose objects as in the schema: unknown fields are kept, at every level.
 * A field the schema knows and this check does not (one added to
 * `envelopeSchema` later) sends every envelope carrying it to the schema:
 * HANDLED lists what is checked here, compared with the schema's shapes
 * when this module loads (correct, only slower; the test fails until the
 * field is added here).
 */
import {
  authSummarySchema,
  bodyRefSchema,
  clientSchema,
  type Envelope,
  envelopeSchema,
  headerRemovalSchema,
  headerSchema,
  hopSchema,
  mailFromSchema,
  PART_ID_PATTERN,
  recipientDeliverySchema,
  recipientSchema,
  routeSchema,
  ruleHitSchema,
  verdictSchema,
} from './envelope.ts';

type Obj = Record<string, unknown>;

/** The fields each check below looks at, per object of the schema. */
export const HANDLED = {
  envelope: ['v', 'id', 'partId', 'trace', 'receivedAt', 'source', 'receivedBy', 'client', 'mailFrom'].concat(
    ['recipients', 'route', 'body', 'prepend', 'removeHeaders', 'verdict', 'auth', 'hops', 'queueWake'],
  ),
  client: ['ip', 'port', 'helo', 'reverseName', 'tls', 'auth'],
  mailFrom: ['address', 'size', 'body', 'smtputf8', 'ret', 'envid', 'requireTls', 'original'],
  recipient: [
    'address',
    'original',
    'via',
    'notify',
    'orcpt',
    'status',
    'lastReply',
    'forwardOwner',
    'delivery',
  ],
  delivery: ['action', 'remoteMta', 'attempts', 'dsnSent', 'tls'],
  route: ['kind', 'domain', 'name', 'host', 'port', 'lmtp'],
  header: ['name', 'value', 'addedBy'],
  removal: ['name', 'index', 'reason'],
  verdict: ['action', 'score', 'rules', 'reason'],
  ruleHit: ['name', 'score', 'detail'],
  auth: ['spf', 'dkim', 'dmarc', 'arc', 'dmarcDetail', 'arcChain'],
  hop: ['stage', 'instance', 'at'],
  trace: ['traceparent', 'tracestate'],
  tls: ['protocol', 'cipher', 'clientCertificate'],
  clientAuth: ['user', 'method'],
  body: ['kind', 'size', 'sha256', 'bucket', 'key', 'eightBit'],
  dkim: ['domain', 'result', 'selector', 'aligned'],
  dmarcDetail: ['domain', 'result', 'policy', 'disposition'],
  arcChain: ['result', 'instances'],
} as const;

type ShapeOwner = { shape: Record<string, unknown> };
/** The object inside an optional field's schema. */
const inner = (optional: { unwrap(): unknown }) => optional.unwrap() as ShapeOwner;
const SCHEMAS: Record<keyof typeof HANDLED, ShapeOwner[]> = {
  envelope: [envelopeSchema],
  client: [clientSchema],
  mailFrom: [mailFromSchema],
  recipient: [recipientSchema],
  delivery: [recipientDeliverySchema],
  route: routeSchema.options as unknown as ShapeOwner[],
  header: [headerSchema],
  removal: [headerRemovalSchema],
  verdict: [verdictSchema],
  ruleHit: [ruleHitSchema],
  auth: [authSummarySchema],
  hop: [hopSchema],
  trace: [inner(envelopeSchema.shape.trace)],
  tls: [inner(clientSchema.shape.tls)],
  clientAuth: [inner(clientSchema.shape.auth)],
  body: bodyRefSchema.options as unknown as ShapeOwner[],
  dkim: [authSummarySchema.shape.dkim.element as unknown as ShapeOwner],
  dmarcDetail: [inner(authSummarySchema.shape.dmarcDetail)],
  arcChain: [inner(authSummarySchema.shape.arcChain)],
};

/** Fields the schema has and the checks here do not look at, per object: empty unless the schema grew. */
export const UNHANDLED = Object.fromEntries(
  Object.entries(SCHEMAS).map(([name, schemas]) => {
    const handled: readonly string[] = HANDLED[name as keyof typeof HANDLED];
    const known = schemas.flatMap((x) => Object.keys(x.shape));
    return [name, [...new Set(known)].filter((k) => !handled.includes(k))];
  }),
) as Record<keyof typeof HANDLED, string[]>;

/** None of the fields this check does not know is present. */
const noneOf = (o: Obj, fields: string[]) => {
  for (const f of fields) if (o[f] !== undefined) return false;
  return true;
};

const QUEUE_ID = /^[0-9A-Z]{10,40}$/;
const PART_ID = new RegExp(PART_ID_PATTERN);
const SHA256_HEX = /^[0-9a-f]{64}$/;
const HEADER_NAME = /^[!-9;-~]+$/;
const LINE_BREAK_OR_NUL = /[\r\n\0]/;
const BARE_CR_OR_LF = /\r(?!\n)|(?<!\r)\n/;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const optStr = (v: unknown) => v === undefined || typeof v === 'string';
const strMax = (v: unknown, max: number) => typeof v === 'string' && v.length <= max;
const nonEmpty = (v: unknown) => typeof v === 'string' && v.length > 0;
const optBool = (v: unknown) => v === undefined || typeof v === 'boolean';
const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const intIn = (v: unknown, min: number, max: number) =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
const count = (v: unknown) => intIn(v, 0, Number.MAX_SAFE_INTEGER);
const oneOf = (v: unknown, values: readonly string[]) => typeof v === 'string' && values.includes(v);
const optOneOf = (v: unknown, values: readonly string[]) => v === undefined || oneOf(v, values);
/** mailboxSchema: at most 512 characters, no CR, LF or NUL. */
const mailbox = (v: unknown) => strMax(v, 512) && !LINE_BREAK_OR_NUL.test(v as string);
/** An array whose every element passes `check` (holes included: `every` would skip them). */
function arrayOf(v: unknown, check: (x: unknown) => boolean): boolean {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (!check(v[i])) return false;
  return true;
}
/** z.iso.datetime() in the form toISOString writes (what every stage writes); other forms: the schema decides. */
const isoTime = (v: unknown) => {
  if (typeof v !== 'string' || v.length !== 24) return false;
  const t = Date.parse(v);
  return Number.isFinite(t) && new Date(t).toISOString() === v;
};

function client(c: unknown): boolean {
  if (!isObj(c) || !noneOf(c, UNHANDLED.client)) return false;
  if (!nonEmpty(c.ip) || !(c.port === undefined || intIn(c.port, 0, 65535))) return false;
  if (!mailbox(c.helo) || !optStr(c.reverseName)) return false;
  const tls = c.tls;
  if (tls !== undefined) {
    if (!isObj(tls) || !noneOf(tls, UNHANDLED.tls) || !isStr(tls.protocol) || !isStr(tls.cipher))
      return false;
    if (tls.clientCertificate !== undefined) return false; // the relay door: the schema checks it
  }
  const a = c.auth;
  return a === undefined || (isObj(a) && noneOf(a, UNHANDLED.clientAuth) && isStr(a.user) && isStr(a.method));
}

function mailFrom(m: unknown): boolean {
  return (
    isObj(m) &&
    noneOf(m, UNHANDLED.mailFrom) &&
    mailbox(m.address) &&
    (m.size === undefined || count(m.size)) &&
    optOneOf(m.body, ['7BIT', '8BITMIME', 'BINARYMIME']) &&
    optBool(m.smtputf8) &&
    optOneOf(m.ret, ['FULL', 'HDRS']) &&
    (m.envid === undefined || strMax(m.envid, 100)) &&
    optBool(m.requireTls) &&
    (m.original === undefined || mailbox(m.original))
  );
}

function delivery(d: unknown): boolean {
  return (
    isObj(d) &&
    noneOf(d, UNHANDLED.delivery) &&
    optOneOf(d.action, ['failed', 'delayed', 'delivered', 'relayed', 'expanded']) &&
    (d.remoteMta === undefined || strMax(d.remoteMta, 512)) &&
    (d.attempts === undefined || count(d.attempts)) &&
    optBool(d.dsnSent) &&
    optOneOf(d.tls, ['none', 'tls', 'mta-sts', 'dane'])
  );
}

const STATUSES = ['pending', 'delivered', 'deferred', 'failed'];

function recipient(r: unknown): boolean {
  if (!isObj(r) || !noneOf(r, UNHANDLED.recipient)) return false;
  if (!mailbox(r.address) || (r.address as string).length === 0 || !mailbox(r.original)) return false;
  if (!(r.via === undefined || arrayOf(r.via, isStr))) return false;
  if (
    !(r.notify === undefined || arrayOf(r.notify, (n) => oneOf(n, ['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'])))
  )
    return false;
  if (!(r.orcpt === undefined || strMax(r.orcpt, 500)) || !optOneOf(r.status, STATUSES)) return false;
  if (!optStr(r.lastReply) || !(r.forwardOwner === undefined || mailbox(r.forwardOwner))) return false;
  return r.delivery === undefined || delivery(r.delivery);
}

function route(r: unknown): boolean {
  if (!isObj(r) || !noneOf(r, UNHANDLED.route)) return false;
  if (r.kind === 'mx') return nonEmpty(r.domain);
  if (r.kind === 'smtp')
    return nonEmpty(r.name) && nonEmpty(r.host) && intIn(r.port, 1, 65535) && optBool(r.lmtp);
  return false;
}

function body(b: unknown): boolean {
  if (
    !isObj(b) ||
    !noneOf(b, UNHANDLED.body) ||
    !count(b.size) ||
    !isStr(b.sha256) ||
    !SHA256_HEX.test(b.sha256)
  )
    return false;
  if (b.kind === 'inline') return true;
  return b.kind === 'object' && nonEmpty(b.bucket) && nonEmpty(b.key) && optBool(b.eightBit);
}

const header = (h: unknown) =>
  isObj(h) &&
  noneOf(h, UNHANDLED.header) &&
  isStr(h.name) &&
  HEADER_NAME.test(h.name) &&
  isStr(h.value) &&
  !h.value.includes('\0') &&
  !BARE_CR_OR_LF.test(h.value) &&
  isStr(h.addedBy);

const removal = (h: unknown) =>
  isObj(h) &&
  noneOf(h, UNHANDLED.removal) &&
  isStr(h.name) &&
  HEADER_NAME.test(h.name) &&
  count(h.index) &&
  optStr(h.reason);

const ruleHit = (r: unknown) =>
  isObj(r) && noneOf(r, UNHANDLED.ruleHit) && isStr(r.name) && isNum(r.score) && optStr(r.detail);

function verdict(v: unknown): boolean {
  return (
    isObj(v) &&
    noneOf(v, UNHANDLED.verdict) &&
    oneOf(v.action, ['accept', 'tag', 'greylist', 'tempfail', 'reject']) &&
    isNum(v.score) &&
    (v.rules === undefined || arrayOf(v.rules, ruleHit)) &&
    optStr(v.reason)
  );
}

const POLICIES = ['none', 'quarantine', 'reject'];

function auth(a: unknown): boolean {
  if (!isObj(a) || !noneOf(a, UNHANDLED.auth) || !isStr(a.spf) || !isStr(a.dmarc) || !isStr(a.arc))
    return false;
  const dkimOk = arrayOf(
    a.dkim,
    (d) =>
      isObj(d) &&
      noneOf(d, UNHANDLED.dkim) &&
      isStr(d.domain) &&
      isStr(d.result) &&
      optStr(d.selector) &&
      optBool(d.aligned),
  );
  if (!dkimOk) return false;
  const dd = a.dmarcDetail;
  if (
    dd !== undefined &&
    !(
      isObj(dd) &&
      noneOf(dd, UNHANDLED.dmarcDetail) &&
      optStr(dd.domain) &&
      isStr(dd.result) &&
      optOneOf(dd.policy, POLICIES) &&
      optOneOf(dd.disposition, POLICIES)
    )
  )
    return false;
  const ac = a.arcChain;
  return (
    ac === undefined ||
    (isObj(ac) &&
      noneOf(ac, UNHANDLED.arcChain) &&
      oneOf(ac.result, ['none', 'pass', 'fail']) &&
      count(ac.instances))
  );
}

const hop = (h: unknown) =>
  isObj(h) && noneOf(h, UNHANDLED.hop) && isStr(h.stage) && isStr(h.instance) && isStr(h.at);

/**
 * `value` (a fresh JSON.parse result, changed in place) as an Envelope with
 * the schema's defaults, or undefined: then `parseEnvelope` decides.
 */
export function checkDecodedEnvelope(value: unknown): Envelope | undefined {
  if (!isObj(value) || !noneOf(value, UNHANDLED.envelope)) return undefined;
  const e = value;
  const ok =
    e.v === 1 &&
    isStr(e.id) &&
    QUEUE_ID.test(e.id) &&
    (e.partId === undefined || (isStr(e.partId) && PART_ID.test(e.partId))) &&
    (e.trace === undefined ||
      (isObj(e.trace) &&
        noneOf(e.trace, UNHANDLED.trace) &&
        isStr(e.trace.traceparent) &&
        optStr(e.trace.tracestate))) &&
    isoTime(e.receivedAt) &&
    oneOf(e.source, ['mx', 'submission', 'relay', 'dsn']) &&
    isStr(e.receivedBy) &&
    client(e.client) &&
    mailFrom(e.mailFrom) &&
    arrayOf(e.recipients, recipient) &&
    (e.recipients as unknown[]).length > 0 &&
    (e.route === undefined || route(e.route)) &&
    body(e.body) &&
    (e.prepend === undefined || arrayOf(e.prepend, header)) &&
    (e.removeHeaders === undefined || arrayOf(e.removeHeaders, removal)) &&
    (e.verdict === undefined || verdict(e.verdict)) &&
    (e.auth === undefined || auth(e.auth)) &&
    (e.hops === undefined || arrayOf(e.hops, hop)) &&
    (e.queueWake === undefined || intIn(e.queueWake, 1, Number.MAX_SAFE_INTEGER));
  if (!ok) return undefined;
  // The schema's defaults.
  for (const r of e.recipients as Obj[]) r.status ??= 'pending';
  if (isObj(e.route) && e.route.kind === 'smtp') e.route.lmtp ??= false;
  if (isObj(e.verdict)) e.verdict.rules ??= [];
  e.prepend ??= [];
  e.hops ??= [];
  return e as unknown as Envelope;
}
