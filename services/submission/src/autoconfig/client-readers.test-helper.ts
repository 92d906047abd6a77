/**
 * Test-side readers of the autoconfig documents, standing in for the clients:
 * each document is parsed by a real XML parser (fast-xml-parser) and then
 * read the way the client reads it.
 *
 * `readLikeThunderbird` follows the checks of Thunderbird's readFromXML
 * (comm-central mail/components/accountcreation/modules/readFromXML.sys.mjs):
 * emailProvider with an id that is a host name, at least one <domain>, an
 * incomingServer it can use (it throws "Need proper <incomingServer> in XML
 * file" otherwise), outgoingServer entries of type smtp with host name,
 * port 1-65535, socketType plain/SSL/STARTTLS, an authentication method it
 * knows and, for password methods, a username. The first usable server of
 * each kind is the one it uses, the rest are alternatives.
 *
 * `plistToValue` turns an Apple plist into plain values, keeping key/value
 * pairing (which needs the parser's ordered mode).
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';

export function assertWellFormed(xml: string): void {
  const v = XMLValidator.validate(xml);
  if (v !== true) throw new Error(`not well-formed XML: ${v.err.msg} at line ${v.err.line}`);
}

type Node = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  trimValues: true,
  isArray: (name) =>
    ['domain', 'incomingServer', 'outgoingServer', 'socketType', 'authentication'].includes(name),
});

/** Parse to plain objects (attributes as "@name", text as strings). */
export function parseXml(xml: string): Node {
  assertWellFormed(xml);
  return parser.parse(xml) as Node;
}

export interface TbServer {
  type: string;
  hostname: string;
  port: number;
  socketType: 'plain' | 'SSL' | 'STARTTLS';
  auth: string;
  username?: string;
}

export interface TbConfig {
  id: string;
  displayName: string;
  domains: string[];
  incoming: TbServer;
  incomingAlternatives: TbServer[];
  outgoing: TbServer;
  outgoingAlternatives: TbServer[];
}

function text(v: unknown): string {
  if (typeof v === 'string' && v.length > 0) return v;
  throw new Error('need a non-empty string');
}

function hostname(v: unknown): string {
  const s = text(v).toLowerCase();
  if (!/^[a-z0-9.-]+$/.test(s)) throw new Error(`hostname syntax: ${s}`);
  return s;
}

function portNumber(v: unknown): number {
  const n = Number(text(v));
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`port out of range: ${String(v)}`);
  return n;
}

function firstKnown<T extends string>(values: unknown, known: readonly T[], what: string): T {
  for (const v of (values as unknown[] | undefined) ?? []) {
    if (known.includes(v as T)) return v as T;
  }
  throw new Error(`need proper <${what}> in XML`);
}

const INCOMING_AUTH = [
  'password-cleartext',
  'plain',
  'password-encrypted',
  'secure',
  'GSSAPI',
  'NTLM',
  'OAuth2',
] as const;
const OUTGOING_AUTH = ['none', 'client-IP-address', 'smtp-after-pop', ...INCOMING_AUTH] as const;
const SOCKET_TYPES = ['plain', 'SSL', 'STARTTLS'] as const;

function readServer(x: Node, kind: 'incoming' | 'outgoing'): TbServer {
  const type = String(x['@type']);
  if (kind === 'incoming' && !['pop3', 'imap', 'nntp', 'exchange'].includes(type))
    throw new Error(`type ${type}`);
  if (kind === 'outgoing' && type !== 'smtp') throw new Error('outgoing server is not smtp');
  const server: TbServer = {
    type,
    hostname: hostname(x.hostname),
    port: portNumber(x.port),
    socketType: firstKnown(x.socketType, SOCKET_TYPES, 'socketType'),
    auth: firstKnown(x.authentication, kind === 'incoming' ? INCOMING_AUTH : OUTGOING_AUTH, 'authentication'),
  };
  if (kind === 'incoming' || 'username' in x || server.auth.startsWith('password')) {
    server.username = text(x.username); // may be a %PLACEHOLDER%
  }
  return server;
}

function usable(list: unknown, kind: 'incoming' | 'outgoing'): TbServer[] {
  const out: TbServer[] = [];
  let last: unknown;
  for (const x of (list as Node[] | undefined) ?? []) {
    try {
      out.push(readServer(x, kind));
    } catch (err) {
      last = err;
    }
  }
  if (out.length === 0) {
    throw last ?? new Error(`Need proper <${kind}Server> in XML file`);
  }
  return out;
}

/** Read a clientConfig document as Thunderbird's account wizard does; throws what Thunderbird would. */
export function readLikeThunderbird(xml: string): TbConfig {
  const doc = parseXml(xml);
  const clientConfig = doc.clientConfig as Node | undefined;
  const provider = clientConfig?.emailProvider as Node | undefined;
  if (!provider) throw new Error('no emailProvider');
  const id = hostname(provider['@id']);
  const domains = ((provider.domain as unknown[] | undefined) ?? []).map(hostname);
  if (domains.length === 0) throw new Error('need proper <domain> in XML');
  const [incoming, ...incomingAlternatives] = usable(provider.incomingServer, 'incoming');
  const [outgoing, ...outgoingAlternatives] = usable(provider.outgoingServer, 'outgoing');
  return {
    id,
    displayName: typeof provider.displayName === 'string' ? provider.displayName : id,
    domains,
    incoming: incoming!,
    incomingAlternatives,
    outgoing: outgoing!,
    outgoingAlternatives,
  };
}

/** The outgoing servers of a clientConfig document in order, read as Thunderbird reads them (no incoming needed). */
export function outgoingServersOf(xml: string): TbServer[] {
  const provider = (parseXml(xml).clientConfig as Node).emailProvider as Node;
  return usable(provider.outgoingServer, 'outgoing');
}

export type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

type Ordered = Record<string, unknown> & { ':@'?: Record<string, string> };

const orderedParser = new XMLParser({ preserveOrder: true, ignoreAttributes: false, parseTagValue: false });

function tagOf(n: Ordered): string {
  const tag = Object.keys(n).find((k) => k !== ':@');
  if (!tag) throw new Error('empty node');
  return tag;
}

function textOf(children: Ordered[]): string {
  return children.map((c) => String(c['#text'] ?? '')).join('');
}

function plistNode(n: Ordered): PlistValue {
  const tag = tagOf(n);
  const children = (n[tag] as Ordered[]).filter(
    (c) => tagOf(c) !== '#text' || String(c['#text']).trim() !== '',
  );
  switch (tag) {
    case 'string':
      return textOf(n[tag] as Ordered[]);
    case 'integer': {
      const s = textOf(children);
      if (!/^-?\d+$/.test(s)) throw new Error(`bad integer ${s}`);
      return Number(s);
    }
    case 'true':
      return true;
    case 'false':
      return false;
    case 'array':
      return children.map(plistNode);
    case 'dict': {
      const out: Record<string, PlistValue> = {};
      for (let i = 0; i < children.length; i += 2) {
        const k = children[i]!;
        const v = children[i + 1];
        if (tagOf(k) !== 'key' || !v) throw new Error('dict without key/value pairing');
        const key = textOf(k.key as Ordered[]);
        if (key in out) throw new Error(`duplicate key ${key}`);
        out[key] = plistNode(v);
      }
      return out;
    }
    default:
      throw new Error(`unexpected plist element <${tag}>`);
  }
}

/** The top-level value of an Apple plist document. */
export function plistToValue(xml: string): PlistValue {
  assertWellFormed(xml);
  const nodes = orderedParser.parse(xml) as Ordered[];
  const plist = nodes.find((n) => tagOf(n) === 'plist');
  if (!plist) throw new Error('no <plist>');
  const inner = (plist.plist as Ordered[]).filter((c) => tagOf(c) !== '#text');
  if (inner.length !== 1) throw new Error('plist must hold one value');
  return plistNode(inner[0]!);
}
