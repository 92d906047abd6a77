/**
 * SMTP replies Sluice sends, in one table, so every service refuses alike.
 *
 * A reply is a basic code (RFC 5321 §4.2), an enhanced status code (RFC 3463,
 * "class.subject.detail", announced with ENHANCEDSTATUSCODES, RFC 2034) and a
 * short text. `SmtpError` carries one as a throwable value: its `message` starts
 * with the enhanced code ("5.7.1 Relay access denied") and `responseCode` is the
 * basic code, which is the shape smtp-server's hook callbacks take, so a handler
 * can pass it to its callback as is.
 *
 * The texts never contain client-supplied data: reply lines must not carry
 * CR/LF (response splitting), and echoing addresses back serves no one.
 */

/** An enhanced status code: class 2/4/5, subject and detail of 1-3 digits (RFC 3463 §2). */
const ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3}$/;

export interface SmtpReply {
  /** Basic reply code, RFC 5321 §4.2.3. */
  code: number;
  /** Enhanced status code, RFC 3463. */
  enhanced: string;
  text: string;
}

/** Refusal of a command or a message with a specific reply; thrown or passed to smtp-server callbacks. */
export class SmtpError extends Error {
  override name = 'SmtpError';
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;

  constructor(reply: SmtpReply, opts?: { cause?: unknown }) {
    if (!Number.isInteger(reply.code) || reply.code < 400 || reply.code > 599) {
      throw new RangeError(`an SmtpError needs a 4xx or 5xx code, not ${reply.code}`);
    }
    assertReplyParts(reply);
    super(`${reply.enhanced} ${reply.text}`, opts);
    this.code = reply.code;
    this.enhanced = reply.enhanced;
    this.text = reply.text;
  }

  /** smtp-server reads the basic code from here. */
  get responseCode(): number {
    return this.code;
  }

  /** true for a 4xx reply: the client should try again later. */
  get transient(): boolean {
    return this.code < 500;
  }

  /** The reply line as sent: "554 5.7.1 Relay access denied". */
  get line(): string {
    return formatReply(this);
  }
}

function assertReplyParts(reply: SmtpReply): void {
  if (!ENHANCED_CODE.test(reply.enhanced)) {
    throw new RangeError(`not an RFC 3463 enhanced status code: ${JSON.stringify(reply.enhanced)}`);
  }
  // RFC 3463 §2: the class of the enhanced code matches the first digit of the basic code.
  if (reply.enhanced[0] !== String(reply.code)[0]) {
    throw new RangeError(`enhanced code ${reply.enhanced} does not match reply code ${reply.code}`);
  }
  if (/[\r\n\0]/.test(reply.text)) throw new RangeError('reply text must not contain CR, LF or NUL');
}

/** "250 2.0.0 Ok: queued as X" */
export function formatReply(reply: SmtpReply): string {
  return `${reply.code} ${reply.enhanced} ${reply.text}`;
}

/** Split a reply text that begins with an enhanced status code (as SmtpError.message does). */
export function splitEnhancedCode(text: string): { enhanced: string; text: string } | undefined {
  const m = /^([245]\.\d{1,3}\.\d{1,3}) (.*)$/s.exec(text);
  return m ? { enhanced: m[1]!, text: m[2]! } : undefined;
}

const reply = (code: number, enhanced: string, text: string): SmtpReply => ({ code, enhanced, text });

/**
 * The refusals Sluice uses. Codes follow RFC 5321 and RFC 3463 and, where the
 * RFCs leave a choice, what Postfix answers in the same situation, because that
 * is what remote postmasters and client retry logic are used to.
 */
export const replies = {
  /**
   * RCPT for a domain that is not ours, or with routing syntax (`%`, `!`, an
   * address literal): we are not an open relay. Postfix reject_unauth_destination
   * answers 554 5.7.1 "Relay access denied" (RFC 3463 X.7.1: delivery not authorized).
   */
  relayDenied: reply(554, '5.7.1', 'Relay access denied'),
  /** Ours, but no such address. RFC 5321 §4.2.3 550; RFC 3463 X.1.1 bad destination mailbox. */
  unknownUser: reply(550, '5.1.1', 'Recipient address rejected: user unknown'),
  /** The recipient could not be looked up now (resolver down or slow). RFC 3463 X.3.0; never accept-all. */
  tempLookup: reply(451, '4.3.0', 'Recipient address lookup failed, try again later'),
  /** RCPT argument that is not an RFC 5321 §4.1.2 Mailbox. RFC 3463 X.1.3 bad destination address syntax. */
  badRecipientSyntax: reply(501, '5.1.3', 'Bad recipient address syntax'),
  /** MAIL FROM argument that is not a valid reverse-path. RFC 3463 X.1.7 bad sender address syntax. */
  badSenderSyntax: reply(501, '5.1.7', 'Bad sender address syntax'),
  /** A MAIL/RCPT parameter value we cannot carry (e.g. ENVID over 100, ORCPT over 500 characters, RFC 3461). X.5.4. */
  badParameter: reply(501, '5.5.4', 'Invalid command parameter'),
  /** RFC 5321 §4.5.3.1.10: 452 for too many recipients; RFC 3463 X.5.3; the client sends the rest later. */
  tooManyRecipients: reply(452, '4.5.3', 'Too many recipients'),
  /** Declared or actual size over the limit: RFC 1870 §6.2 552; RFC 3463 X.3.4 message too big for system. */
  tooBig: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  /** The queue (stream) refuses new messages because it is full: RFC 5321 452; RFC 3463 X.3.1 system full. */
  queueFull: reply(452, '4.3.1', 'Insufficient system storage, try again later'),
  /**
   * The ingress holds as many message bytes in memory as ingress.maxBodyBytesInFlight allows:
   * RFC 5321 §4.2.2 452 "insufficient system storage" (also RFC 1870 §6.1 at MAIL FROM SIZE=);
   * RFC 3463 X.3.1 mail system full. The client retries later.
   */
  bodiesInFlightFull: reply(452, '4.3.1', 'Too much mail in transit, try again later'),
  /** No PubAck (timeout, no quorum, NATS down): RFC 5321 451; RFC 3463 X.3.0. Never 250. */
  queueUnavailable: reply(451, '4.3.0', 'Queue temporarily unavailable, try again later'),
  /** Anything else that went wrong on our side: RFC 5321 451 "local error in processing"; RFC 3463 X.3.0. */
  localError: reply(451, '4.3.0', 'Local error in processing, try again later'),
  /** The before-queue filter did not answer in time: 451 4.3.0, never a silent accept. */
  filterUnavailable: reply(451, '4.3.0', 'Message checks temporarily unavailable, try again later'),
  /**
   * Every filter replica we asked was saturated (answered busy twice): RFC 3463 X.3.2
   * "system not accepting network messages", a temporary condition; the client retries later.
   */
  filterBusy: reply(451, '4.3.2', 'Content filter busy, try again later'),
  /** The filter's verdict is reject. RFC 3463 X.7.1: delivery not authorized, message refused. */
  policyReject: reply(550, '5.7.1', 'Message rejected'),
  /** The filter's verdict is tempfail or greylist. 451 with X.7.1 (the common greylisting reply). */
  policyTempfail: reply(451, '4.7.1', 'Message deferred, try again later'),
  /**
   * A line of the message ends in a bare LF (SMTP smuggling, CVE-2023-51764):
   * RFC 5321 §2.3.8 requires CRLF. Postfix smtpd_forbid_bare_newline answers
   * "550 5.5.2 Error: bare <LF> received" (smtpd_forbid_bare_newline_reject_code
   * defaults to 550) and disconnects; we do the same.
   */
  bareLf: reply(550, '5.5.2', 'Error: bare <LF> received'),
  /** The same for a CR that does not start a CRLF pair. */
  bareCr: reply(550, '5.5.2', 'Error: bare <CR> received'),
  /** Graceful shutdown: RFC 5321 §3.8 421; RFC 3463 X.3.2 system not accepting network messages. */
  shuttingDown: reply(421, '4.3.2', 'Service shutting down, try again later'),
  /** A NUL octet in the message: RFC 5322 §2.1 / RFC 5321 §4.5.2 forbid it; it is a smuggling tool. X.6.0. */
  nulInBody: reply(550, '5.6.0', 'Message content rejected: NUL character'),
  /** A message line over 998 octets (RFC 5322 §2.1.1, RFC 5321 §4.5.3.1.6). X.6.0 media error. */
  lineTooLong: reply(550, '5.6.0', 'Message content rejected: line longer than 998 characters'),
  /** RFC 5321 §4.1.1.11: a MAIL/RCPT parameter we do not know; RFC 3463 X.5.4. */
  unknownParameter: reply(555, '5.5.4', 'Unsupported MAIL/RCPT parameter'),
  /** Admission: too many sessions from this client, its network or in total. RFC 3463 X.7.0 / X.3.2. */
  tooManyFromYou: reply(421, '4.7.0', 'Too many connections from your address, try again later'),
  tooManyConnections: reply(421, '4.3.2', 'Too many connections, try again later'),
  /** Postfix smtpd_hard_error_limit: 421 4.7.0 and disconnect. */
  tooManyErrors: reply(421, '4.7.0', 'Too many errors, closing connection'),
  /** Recipient harvesting: too many unknown recipients in one session. */
  tooManyUnknown: reply(421, '4.7.0', 'Too many unknown recipients, closing connection'),
  /** A command, DATA or the session took too long (RFC 5321 §4.5.3.2; X.4.2 bad connection). */
  timedOut: reply(421, '4.4.2', 'Timeout exceeded, closing connection'),
  /** RFC 2920 §3.1 violated; Postfix smtpd_forbid_unauth_pipelining answers 554 5.5.0 and disconnects. */
  unauthPipelining: reply(554, '5.5.0', 'Error: SMTP protocol synchronization'),
  /**
   * A command line ends in a bare LF, or holds a bare CR (RFC 5321 §2.3.8: lines end with CRLF).
   * 500 5.5.2 (syntax error) and disconnect: the client's framing cannot be trusted any more.
   */
  bareLfCommand: reply(500, '5.5.2', 'Error: bare <LF> received'),
  bareCrCommand: reply(500, '5.5.2', 'Error: bare <CR> received'),
  /** Sessions per client IP per minute over the limit (counted across replicas). */
  tooManySessions: reply(421, '4.7.0', 'Too many sessions from your address, try again later'),
} as const satisfies Record<string, SmtpReply>;

export type ReplyName = keyof typeof replies;

/** An SmtpError for a table entry, optionally with a more specific text. */
export function smtpError(name: ReplyName, text?: string, opts?: { cause?: unknown }): SmtpError {
  const base = replies[name];
  return new SmtpError(text === undefined ? base : { ...base, text }, opts);
}

/** RFC 5321 §4.2.1 success after DATA, in Postfix' form so log tooling recognises it. */
export function queuedReply(queueId: string): SmtpReply {
  return reply(250, '2.0.0', `Ok: queued as ${queueId}`);
}

/**
 * Make a short client-visible reason safe for a reply line: printable ASCII
 * only, bounded. RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets.
 */
export function safeReplyText(text: string, max = 200): string {
  const clean = text.replace(/[^\x20-\x7e]+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max - 3)}...` : clean;
}
