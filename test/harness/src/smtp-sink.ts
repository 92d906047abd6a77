/**
 * A real SMTP (or LMTP) server on 127.0.0.1 that keeps what it receives: the
 * far end of the egress in tests. Built on smtp-server, the same library the
 * ingress uses, so it speaks the protocol as a real MTA does (pipelining,
 * SIZE, 8BITMIME, SMTPUTF8, DSN parameters).
 *
 * Each accepted message is recorded with its envelope, raw bytes (exactly as
 * received, dot-unstuffed) and their SHA-256, so tests can check that nothing
 * was lost, duplicated or altered. waitFor() resolves on the event of a
 * message arriving (no polling, no fixed sleeps). Refusals are scripted with
 * failWith (at RCPT) and failData (after the final dot).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';

export interface SinkMessage {
  mailFrom: string;
  rcptTo: string[];
  raw: Buffer;
  sha256: string;
  /** EHLO/HELO name the client gave. */
  helo: string;
  /** MAIL FROM parameters (SIZE, BODY, RET, ENVID, SMTPUTF8, REQUIRETLS), upper-case keys. */
  mailParams: Record<string, string | true>;
  /** RCPT TO DSN parameters per recipient, when given. */
  rcptDsn: Array<{ address: string; notify?: string[]; orcpt?: string }>;
  /** The session used TLS (STARTTLS). */
  secure: boolean;
  /** The SMTP session it came in (smtp-server's session id): equal for messages sent on one connection. */
  session: string;
  receivedAt: Date;
}

/** A scripted refusal: the reply code and text (an enhanced code may lead the text). */
export interface SinkFailure {
  code: number;
  message: string;
}

export interface SmtpSinkOptions {
  /** 0 (default): any free port. */
  port?: number;
  /** Refuse a recipient at RCPT TO. */
  failWith?: (rcpt: string) => SinkFailure | undefined;
  /** Refuse a whole message after the final dot (for LMTP: every recipient). */
  failData?: (msg: Pick<SinkMessage, 'mailFrom' | 'rcptTo' | 'raw'>) => SinkFailure | undefined;
  /**
   * Called after the final dot, before the reply: the reply (and the message's place in
   * `messages`) waits until it resolves. A slow remote server, for in-flight tests.
   */
  beforeReply?: (msg: Pick<SinkMessage, 'mailFrom' | 'rcptTo' | 'raw'>) => Promise<void>;
  /** Speak LMTP (RFC 2033) instead of SMTP. */
  lmtp?: boolean;
  /**
   * Offer STARTTLS with this key and certificate (PEM); without it STARTTLS is not offered.
   * `clientCa`: also require a client certificate issued by this CA (the handshake fails without one).
   */
  tls?: { key: string | Buffer; cert: string | Buffer; clientCa?: string | Buffer };
  /** SIZE limit to advertise (RFC 1870). */
  size?: number;
  /** Do not advertise REQUIRETLS (RFC 8689) under TLS: a next hop without it. */
  hideRequireTls?: boolean;
  /** Do not advertise DSN (RFC 3461): a next hop that takes no NOTIFY/ORCPT/RET/ENVID. */
  hideDsn?: boolean;
}

export interface SmtpSink {
  host: string;
  port: number;
  readonly messages: readonly SinkMessage[];
  /** Resolve when `count` messages have arrived (all messages so far), or the first matching one. */
  waitFor(count: number, timeoutMs?: number): Promise<SinkMessage[]>;
  waitFor(match: (m: SinkMessage) => boolean, timeoutMs?: number): Promise<SinkMessage>;
  /** Forget the messages received so far. */
  clear(): void;
  stop(): Promise<void>;
}

function refusal(f: SinkFailure): Error & { responseCode: number } {
  return Object.assign(new Error(f.message), { responseCode: f.code });
}

export async function startSmtpSink(opts: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const messages: SinkMessage[] = [];
  const events = new EventEmitter();
  events.setMaxListeners(0);

  const onData = (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    done: (err?: Error | null) => void,
  ) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', (err) => done(err));
    stream.on('end', () => {
      const raw = Buffer.concat(chunks);
      const env = session.envelope;
      const msg: SinkMessage = {
        mailFrom: env.mailFrom ? env.mailFrom.address : '',
        rcptTo: env.rcptTo.map((r) => r.address),
        raw,
        sha256: createHash('sha256').update(raw).digest('hex'),
        helo: session.hostNameAppearsAs || '',
        mailParams: (env.mailFrom ? env.mailFrom.args : false) || {},
        rcptDsn: env.rcptTo.map((r) => ({ address: r.address, notify: r.dsn?.notify, orcpt: r.dsn?.orcpt })),
        secure: session.secure,
        session: session.id,
        receivedAt: new Date(),
      };
      const reply = () => {
        const failure = opts.failData?.(msg);
        if (failure) return done(refusal(failure));
        messages.push(msg);
        events.emit('message', msg);
        done();
      };
      if (opts.beforeReply) void opts.beforeReply(msg).then(reply, (err: Error) => done(err));
      else reply();
    });
  };

  const server = new SMTPServer({
    name: 'sink.test',
    lmtp: opts.lmtp ?? false,
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    disabledCommands: opts.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(opts.tls ? { key: opts.tls.key, cert: opts.tls.cert } : {}),
    ...(opts.tls?.clientCa ? { ca: opts.tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
    hideDSN: opts.hideDsn ?? false,
    hideREQUIRETLS: opts.hideRequireTls ?? false,
    size: opts.size,
    onRcptTo(address, _session, cb) {
      const failure = opts.failWith?.(address.address);
      cb(failure ? refusal(failure) : null);
    },
    onData,
  });

  const host = '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => {}); // a client resetting its connection is not a test failure
  const addr = server.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;

  function waitFor(count: number, timeoutMs?: number): Promise<SinkMessage[]>;
  function waitFor(match: (m: SinkMessage) => boolean, timeoutMs?: number): Promise<SinkMessage>;
  function waitFor(
    what: number | ((m: SinkMessage) => boolean),
    timeoutMs = 10_000,
  ): Promise<SinkMessage[] | SinkMessage> {
    const check = (): SinkMessage[] | SinkMessage | undefined =>
      typeof what === 'number' ? (messages.length >= what ? [...messages] : undefined) : messages.find(what);
    const now = check();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const onMessage = () => {
        const r = check();
        if (r) {
          clearTimeout(timer);
          events.off('message', onMessage);
          resolve(r);
        }
      };
      const timer = setTimeout(() => {
        events.off('message', onMessage);
        const wanted = typeof what === 'number' ? `${what} messages` : 'a matching message';
        reject(new Error(`smtp sink: no ${wanted} within ${timeoutMs} ms (have ${messages.length})`));
      }, timeoutMs);
      events.on('message', onMessage);
    });
  }

  return {
    host,
    port,
    messages,
    waitFor,
    clear() {
      messages.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        // close() waits for open sessions; a test's client may keep one open, so end them.
        for (const c of server.connections) c.close();
        server.close(() => resolve());
      }),
  };
}
