/**
 * What the autoconfig documents describe: the submission host and ports, the
 * mail domains they answer for and, when the organisation has one, its IMAP
 * server. The submission service maps `submission.autoconfig.*` (and its
 * listener ports) onto AutoconfigOptions; `resolveAutoconfig` checks them
 * once, failing fast with the key to fix, and puts them in the form every
 * document builder uses: the endpoints in the order clients should try them.
 */
import { parseMailbox } from '@sluice/smtp';
import { isXmlSafe } from './xml-text.ts';

export interface AutoconfigOptions {
  /** Mail domains the documents answer for (primary first, then alias domains). */
  domains: string[];
  /** The service's name as clients show it ("Example Mail"). */
  displayName: string;
  /** The host name clients connect to for submission (the name in its TLS certificate). */
  submissionHost: string;
  /** 587 with STARTTLS (RFC 6409), 465 with implicit TLS (RFC 8314); an absent port is not advertised. */
  ports: { submission?: number; submissions?: number };
  /** The organisation's IMAP server, when it has one (most mail is forwarded out). */
  imapHost?: string;
  /** Its port (default 993, implicit TLS; 143 means STARTTLS); ignored without imapHost. */
  imapPort?: number;
  /** What clients log in with: the whole address (default) or its local part. */
  username?: 'email-address' | 'local-part';
}

/** How a client secures a connection: TLS from the first byte, or STARTTLS on a plain connection. */
export type TlsMode = 'implicit' | 'starttls';

export interface ServerEndpoint {
  host: string;
  port: number;
  tls: TlsMode;
}

export interface ResolvedAutoconfig {
  /** Lower-case A-label domains, primary first, no duplicates. */
  domains: string[];
  displayName: string;
  /** Submission endpoints, preferred first: implicit TLS before STARTTLS (RFC 8314 §3.3). */
  submission: ServerEndpoint[];
  imap?: ServerEndpoint;
  username: 'email-address' | 'local-part';
}

const KEY = 'submission.autoconfig';

/** RFC 8314 §3.3 / RFC 6409 §3.1 well-known ports. */
export const SUBMISSIONS_PORT = 465;
export const SUBMISSION_PORT = 587;
/** RFC 8314 §3.2 (IMAP over implicit TLS) and RFC 9051 §2.1 (IMAP with STARTTLS). */
export const IMAPS_PORT = 993;
export const IMAP_STARTTLS_PORT = 143;

/** A host or mail domain as lower-case A-labels, or an Error naming the key. */
export function hostName(value: string, key: string): string {
  const parsed = parseMailbox(`x@${value}`);
  if (!parsed.ok || parsed.mailbox.domainKind !== 'domain' || !parsed.mailbox.domain.includes('.')) {
    throw new Error(
      `${key}: "${value}" is not a host name (letters, digits, hyphens and dots, e.g. smtp.example.org)`,
    );
  }
  return parsed.mailbox.domain;
}

function port(value: number, key: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new Error(`${key}: ${value} is not a TCP port (1-65535)`);
  }
  return value;
}

/** Check the options and put them in the form the builders use; throws naming the key to fix. */
export function resolveAutoconfig(o: AutoconfigOptions): ResolvedAutoconfig {
  if (o.domains.length === 0) throw new Error(`${KEY}.domains: list at least one mail domain`);
  const domains = [...new Set(o.domains.map((d, i) => hostName(d, `${KEY}.domains[${i}]`)))];
  const displayName = o.displayName.trim();
  if (displayName.length === 0 || displayName.length > 200 || !isXmlSafe(displayName)) {
    throw new Error(`${KEY}.displayName: give a printable name of at most 200 characters`);
  }
  const host = hostName(o.submissionHost, `${KEY}.submissionHost`);
  const submission: ServerEndpoint[] = [];
  if (o.ports.submissions !== undefined) {
    submission.push({ host, port: port(o.ports.submissions, `${KEY}.ports.submissions`), tls: 'implicit' });
  }
  if (o.ports.submission !== undefined) {
    submission.push({ host, port: port(o.ports.submission, `${KEY}.ports.submission`), tls: 'starttls' });
  }
  if (submission.length === 0) {
    throw new Error(`${KEY}: no submission port to advertise; enable the 465 and/or the 587 listener`);
  }
  let imap: ServerEndpoint | undefined;
  if (o.imapHost !== undefined && o.imapHost !== '') {
    const imapPort = port(o.imapPort ?? IMAPS_PORT, `${KEY}.imapPort`);
    imap = {
      host: hostName(o.imapHost, `${KEY}.imapHost`),
      port: imapPort,
      tls: imapPort === IMAP_STARTTLS_PORT ? 'starttls' : 'implicit',
    };
  }
  // imapPort alone (the schema gives it a default) means nothing without imapHost: ignored.
  const username = o.username ?? 'email-address';
  if (username !== 'email-address' && username !== 'local-part') {
    throw new Error(`${KEY}.username: "${String(username)}" is neither email-address nor local-part`);
  }
  return { domains, displayName, submission, ...(imap ? { imap } : {}), username };
}

/** The login name for `address` (already checked by addressInDomains). */
export function loginName(c: ResolvedAutoconfig, address: { address: string; localPart: string }): string {
  return c.username === 'local-part' ? address.localPart : address.address;
}
