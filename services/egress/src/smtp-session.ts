/**
 * A typed, promise-based SMTP/LMTP client session over nodemailer's
 * SMTPConnection, which gives us control of EHLO, STARTTLS, per-recipient
 * replies and the connection's lifetime (so a pool can later reuse it for
 * several transactions to the same destination).
 *
 * Opening a session: connect, greeting, EHLO with our name (LHLO for LMTP,
 * RFC 2033 §4.1), then STARTTLS when offered (RFC 3207). TLS policy:
 *   - egress.requireTls: STARTTLS is mandatory; no TLS, no session;
 *   - otherwise opportunistic (RFC 7435): with egress.ignoreTlsErrors the
 *     certificate is not verified, and if the TLS handshake itself fails the
 *     session is opened again in cleartext; without it, an unverifiable
 *     certificate fails the session (no fallback to cleartext: the operator
 *     asked for verification).
 *
 * A transaction always resolves with one reply per recipient, never rejects:
 * the RCPT reply for a refused recipient (RFC 5321 §3.3), the reply to the
 * final dot for the accepted ones (or LMTP's reply per recipient, RFC 2033
 * §4.2), and for everyone the MAIL FROM refusal or a local "connection lost"
 * reply when the session broke (RFC 5321 §3.8: treat as temporary). When
 * DATA or the final dot is refused, nodemailer does not tell which
 * recipients had been refused at RCPT; all of them then get the DATA reply,
 * which at worst defers one that a later attempt fails for good.
 *
 * DataStream (nodemailer) dot-stuffs the message (RFC 5321 §4.5.2) and turns
 * any bare CR or LF into CRLF, so what we send never carries a bare line
 * ending (SMTP smuggling). It works on the stream as it passes: the message
 * is piped in (headers, then the body chunk by chunk from the object store),
 * never held whole. If the message stream fails half way (the body does not
 * match its envelope), the final dot is never sent and the connection is cut,
 * so the remote server discards what it got (RFC 5321 §4.1.1.4: the
 * transaction completes only with the dot).
 */
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Candidate } from './destination.ts';
import { localReplies } from './local-replies.ts';
import { oneLine, replyCode } from './outcome.ts';

export interface SessionOptions {
  heloName: string;
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
  requireTls: boolean;
  ignoreTlsErrors: boolean;
  /** Timeout for resolving a transport host name. */
  dnsTimeoutMs?: number;
  /** A TLS client certificate to present (client-cert.ts); TLS is then required. */
  clientCert?: { cert: Buffer; key: Buffer };
  /** Extra CA certificates for PKIX verification (MTA-STS with a private CA in tests). */
  ca?: Buffer;
  /**
   * Authenticate the peer after STARTTLS, before anything else is sent
   * (DANE: dane-verify.ts): a reason string fails the session. Requires TLS.
   */
  verifyPeer?: (socket: TLSSocket) => string | undefined;
  /**
   * Names the TLS policy the session is opened under (tls-policy.ts), e.g. the
   * TLSA records it was authenticated with: the session pool reuses a session
   * only for the same policy, never an unauthenticated one for DANE.
   */
  policyKey?: string;
}

export interface RecipientReply {
  address: string;
  /** Basic reply code (0 when there was no reply). */
  code: number;
  /** The reply as one line. */
  reply: string;
}

export interface Transaction {
  /** Envelope sender; '' is the null reverse-path (MAIL FROM:<>). */
  from: string;
  to: readonly string[];
  message: {
    /** Bytes before dot-stuffing, declared as SIZE= (RFC 1870). */
    size: number;
    /** A fresh stream of the message for this transaction. */
    open(): Promise<Readable>;
  };
  /** Declare BODY=8BITMIME (RFC 6152) when the server offers it. */
  eightBit: boolean;
  /**
   * Send MAIL FROM ... REQUIRETLS (RFC 8689 §4.2.1 last step). The caller has
   * checked that the session is TLS and the server offers it (offers()); if
   * not, every recipient gets the 5.7.30 reply and nothing is sent.
   */
  requireTls?: boolean;
  /**
   * RFC 3461 parameters passed on to a DSN-capable server (§5.2): RET and
   * ENVID on MAIL, NOTIFY and ORCPT per recipient on RCPT. Left out when the
   * server does not advertise DSN.
   */
  dsn?: TransactionDsn;
}

export interface TransactionDsn {
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  recipients: ReadonlyMap<string, { notify?: readonly string[]; orcpt?: string }>;
}

/** RFC 3461 §4: xtext — "+" and "=", and anything outside "!".."~", as "+HH". */
export function xtext(value: string): string {
  let out = '';
  for (const b of Buffer.from(value, 'utf8')) {
    const plain = b >= 0x21 && b <= 0x7e && b !== 0x2b && b !== 0x3d;
    out += plain ? String.fromCharCode(b) : `+${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** A session could not be opened with this candidate; `reply` is what to record. */
export class SessionOpenError extends Error {
  override name = 'SessionOpenError';
  readonly reply: string;
  constructor(reply: string, opts?: { cause?: unknown }) {
    super(reply, opts);
    this.reply = reply;
  }
}

interface NodemailerErrorLike extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejectedErrors?: NodemailerErrorLike[];
}

export class SmtpSession {
  readonly candidate: Candidate;
  readonly #conn: SMTPConnection;
  #usable = true;
  /** The message stream failed after DATA: no final dot was sent. */
  #cutMidData = false;
  /** Ends the transaction in progress with this reply (abort()). */
  #abortTransaction: ((reply: string) => void) | null = null;

  /** NOTIFY/ORCPT of the transaction under way, by recipient (RFC 3461 §5.2). */
  #rcptDsn: TransactionDsn['recipients'] = new Map();

  private constructor(candidate: Candidate, conn: SMTPConnection) {
    this.candidate = candidate;
    this.#conn = conn;
    conn.on('end', () => {
      this.#usable = false;
    });
    // nodemailer sends one NOTIFY/ORCPT for every RCPT of a transaction; ours are per recipient.
    // It builds each RCPT's parameters right after queueing the recipient: answer for that one.
    const internals = conn as unknown as { _recipientQueue?: string[]; _getDsnRcptToArgs(): string };
    internals._getDsnRcptToArgs = () => {
      const rcpt = internals._recipientQueue?.at(-1);
      const p = rcpt === undefined ? undefined : this.#rcptDsn.get(rcpt);
      if (!p || !this.offers('DSN')) return '';
      const args: string[] = [];
      if (p.notify && p.notify.length > 0) args.push(`NOTIFY=${xtext(p.notify.join(','))}`);
      if (p.orcpt) args.push(`ORCPT=${xtext(p.orcpt)}`);
      return args.length > 0 ? ` ${args.join(' ')}` : '';
    };
  }

  /** The server advertised this extension in its (last) EHLO reply. */
  offers(extension: 'DSN' | 'REQUIRETLS'): boolean {
    const known = (this.#conn as unknown as { _supportedExtensions?: string[] })._supportedExtensions;
    return known?.includes(extension) ?? false;
  }

  /** Open a session with one candidate host, per the TLS policy. Rejects with SessionOpenError. */
  static async open(candidate: Candidate, opts: SessionOptions): Promise<SmtpSession> {
    if (opts.verifyPeer) return SmtpSession.#openVerified(candidate, opts, opts.verifyPeer);
    try {
      return new SmtpSession(candidate, await connect(candidate, opts, false));
    } catch (err) {
      const e = err as NodemailerErrorLike;
      if (e.code === 'ETLS' && !opts.requireTls && opts.ignoreTlsErrors) {
        // Opportunistic TLS (RFC 7435): a failed handshake still leaves cleartext.
        try {
          return new SmtpSession(candidate, await connect(candidate, opts, true));
        } catch (err2) {
          throw openError(candidate, err2 as NodemailerErrorLike, opts);
        }
      }
      throw openError(candidate, e, opts);
    }
  }

  /**
   * TLS mandatory, then the peer checked by `verify` before any mail command:
   * a failure closes the session, never falls back to cleartext (RFC 7672 §2.2).
   */
  static async #openVerified(
    candidate: Candidate,
    opts: SessionOptions,
    verify: (socket: TLSSocket) => string | undefined,
  ): Promise<SmtpSession> {
    const strict = { ...opts, requireTls: true };
    let conn: SMTPConnection;
    try {
      conn = await connect(candidate, strict, false);
    } catch (err) {
      throw openError(candidate, err as NodemailerErrorLike, strict);
    }
    const socket = (conn as unknown as { _socket?: TLSSocket })._socket;
    const problem =
      conn.secure && socket && typeof socket.getPeerCertificate === 'function'
        ? verify(socket)
        : 'the session is not encrypted';
    if (problem) {
      conn.close();
      throw new SessionOpenError(localReplies.tlsAuthFailed(`${candidate.label}: ${problem}`));
    }
    return new SmtpSession(candidate, conn);
  }

  /** 'tls' when the session runs over STARTTLS, else 'none'. */
  get tls(): 'none' | 'tls' {
    return this.#conn.secure ? 'tls' : 'none';
  }

  get usable(): boolean {
    return this.#usable && !this.#conn.destroyed;
  }

  /** One mail transaction; resolves with a reply for every recipient. */
  async send(tx: Transaction): Promise<RecipientReply[]> {
    if (!this.usable)
      return allGet(tx.to, localReplies.connectionLost('session closed before the transaction'));
    if (tx.requireTls && !(this.#conn.secure && this.offers('REQUIRETLS'))) {
      // RFC 8689 §4.2.1: never sent without TLS and REQUIRETLS.
      return allGet(tx.to, localReplies.requireTlsUnsupported(this.candidate.label));
    }
    this.#rcptDsn = tx.dsn?.recipients ?? new Map();
    let message: Readable;
    try {
      message = await tx.message.open();
    } catch (err) {
      return allGet(tx.to, localReplies.bodyUnavailable((err as Error).message));
    }
    return new Promise<RecipientReply[]>((resolveReplies) => {
      let settled = false;
      // Whatever the outcome, the message stream is done with (stops an object-store read left half way).
      const resolve = (replies: RecipientReply[]) => {
        if (settled) return;
        settled = true;
        this.#abortTransaction = null;
        message.destroy();
        resolveReplies(replies);
      };
      this.#abortTransaction = (reply) => resolve(allGet(tx.to, reply));
      const dsn =
        tx.dsn && (tx.dsn.ret || tx.dsn.envid) ? { ret: tx.dsn.ret, envid: tx.dsn.envid } : undefined;
      const envelope = {
        from: tx.from,
        to: [...tx.to],
        size: tx.message.size,
        use8BitMime: tx.eightBit,
        // nodemailer adds RET/ENVID only when the server advertises DSN (RFC 3461 §5.2).
        ...(dsn ? { dsn } : {}),
        // MAIL FROM ... REQUIRETLS (RFC 8689 §2); nodemailer checks TLS and the server's EHLO again.
        ...(tx.requireTls ? { requireTLSExtensionEnabled: true } : {}),
      };
      this.#conn.send(envelope as SMTPConnection.Envelope, message, (err, info) => {
        if (err) {
          resolve(this.#fromError(tx.to, err as NodemailerErrorLike));
          return;
        }
        const byAddress = new Map<string, RecipientReply>();
        for (const r of info.rejectedErrors ?? []) {
          const e = r as NodemailerErrorLike;
          if (e.recipient) byAddress.set(e.recipient, fromRemote(e.recipient, e));
        }
        const final = oneLine(info.response ?? '');
        for (const address of info.accepted) {
          // LMTP: accepted recipients are those whose own reply after the dot was 2xx.
          const reply =
            replyCode(final) >= 200 && replyCode(final) < 300
              ? final
              : '250 accepted (per-recipient LMTP reply)';
          byAddress.set(address, { address, code: replyCode(reply), reply });
        }
        resolve(
          tx.to.map(
            (address) =>
              byAddress.get(address) ?? {
                address,
                code: 0,
                reply: localReplies.connectionLost('no reply for this recipient'),
              },
          ),
        );
      });
    });
  }

  /** RSET after a failed transaction, so the session can carry the next one (RFC 5321 §4.1.1.5). */
  reset(): Promise<boolean> {
    if (!this.usable) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.#conn.reset((err) => {
        if (err) this.#usable = false;
        resolve(!err);
      });
    });
  }

  /**
   * Cut the connection now (the attempt's deadline, attempt-deadline.ts): a
   * transaction in progress ends with `reply` for everyone, and whatever the
   * server answers afterwards is never read. No QUIT: mid-DATA it would be
   * read as message text.
   */
  abort(reply: string): void {
    this.#usable = false;
    this.#cutMidData = true;
    this.#abortTransaction?.(reply);
    this.#conn.close();
  }

  /** QUIT and close. */
  close(): void {
    this.#usable = false;
    if (this.#cutMidData) {
      // QUIT would be read as message text: cut the connection, the remote discards the transaction.
      this.#conn.close();
      return;
    }
    try {
      this.#conn.quit();
    } catch {
      this.#conn.close();
    }
  }

  #fromError(to: readonly string[], err: NodemailerErrorLike): RecipientReply[] {
    if (err.rejectedErrors && err.rejectedErrors.length > 0) {
      // Every recipient was refused at RCPT.
      const byAddress = new Map(
        err.rejectedErrors.map((e) => [e.recipient ?? '', fromRemote(e.recipient ?? '', e)]),
      );
      return to.map(
        (address) =>
          byAddress.get(address) ?? { address, code: 0, reply: localReplies.connectionLost(err.message) },
      );
    }
    if (err.response && replyCode(err.response) >= 400) {
      // MAIL FROM, DATA or the final dot was refused (421 closes the session too).
      if (replyCode(err.response) === 421) this.#usable = false;
      return allGet(to, oneLine(err.response));
    }
    if (err.code === 'ESTREAM') {
      // The message stream failed half way (body missing or not what the envelope says).
      this.#usable = false;
      this.#cutMidData = true;
      this.#conn.close();
      return allGet(to, localReplies.bodyUnavailable(err.message));
    }
    if (err.code === 'EREQUIRETLS') {
      // Checked before the transaction; nodemailer's own check agreeing: nothing was sent.
      return allGet(to, localReplies.requireTlsUnsupported(this.candidate.label));
    }
    if (err.code === 'EMESSAGE' && /size/i.test(err.message)) {
      // nodemailer refuses before sending when the server's SIZE (RFC 1870) is smaller.
      return allGet(to, localReplies.tooBig(err.message));
    }
    this.#usable = false;
    return allGet(to, localReplies.connectionLost(`${this.candidate.label}: ${err.message}`));
  }
}

function allGet(to: readonly string[], reply: string): RecipientReply[] {
  const code = replyCode(reply);
  return to.map((address) => ({ address, code, reply }));
}

function fromRemote(address: string, e: NodemailerErrorLike): RecipientReply {
  const reply = oneLine(e.response ?? e.message);
  return { address, code: e.responseCode ?? replyCode(reply), reply };
}

function connect(candidate: Candidate, opts: SessionOptions, cleartext: boolean): Promise<SMTPConnection> {
  return new Promise((resolve, reject) => {
    const conn = new SMTPConnection({
      host: candidate.host,
      port: candidate.port,
      servername: candidate.servername,
      lmtp: candidate.lmtp,
      name: opts.heloName,
      secure: false,
      ignoreTLS: cleartext,
      requireTLS: opts.requireTls,
      opportunisticTLS: !opts.requireTls,
      tls: {
        rejectUnauthorized: !opts.ignoreTlsErrors,
        ...(opts.clientCert ?? {}),
        ...(opts.ca ? { ca: opts.ca } : {}),
      },
      connectionTimeout: opts.connectTimeoutMs,
      greetingTimeout: opts.greetingTimeoutMs,
      socketTimeout: opts.socketTimeoutMs,
      dnsTimeout: opts.dnsTimeoutMs,
      socketCloseTimeout: 1000,
      logger: false,
    });
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      conn.close();
      reject(err);
    };
    // SMTPConnection emits 'error' for every failure; without a listener it would throw.
    conn.on('error', fail);
    conn.once('end', () =>
      fail(
        Object.assign(new Error('connection closed before the session was ready'), { code: 'ECONNECTION' }),
      ),
    );
    conn.connect((err) => {
      if (err) return fail(err);
      if (settled) return;
      settled = true;
      resolve(conn);
    });
  });
}

/** Node's TLS verification failures (OpenSSL X509 errors and the RFC 6125 name check), by their text. */
const CERTIFICATE_PROBLEM = /certificate|self[- ]signed|Hostname\/IP does not match|CERT_/i;

function openError(candidate: Candidate, err: NodemailerErrorLike, opts: SessionOptions): SessionOpenError {
  const detail = err.response ? oneLine(err.response) : err.message;
  if (opts.requireTls && err.code === 'ETLS') {
    return new SessionOpenError(localReplies.tlsRequired(`${candidate.label}: ${detail}`), { cause: err });
  }
  if (opts.requireTls && !opts.ignoreTlsErrors && CERTIFICATE_PROBLEM.test(detail)) {
    // Node refused the certificate (PKIX, MTA-STS or REQUIRETLS): an authentication failure, not a connect one.
    return new SessionOpenError(localReplies.tlsAuthFailed(`${candidate.label}: ${detail}`), { cause: err });
  }
  return new SessionOpenError(localReplies.connectFailed(`${candidate.label}: ${detail}`), { cause: err });
}
