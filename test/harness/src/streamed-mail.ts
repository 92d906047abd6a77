/**
 * Large messages for memory tests, streamed at both ends so that neither the
 * sender nor the receiver holds one whole:
 *
 * - sendStreamedMail() sends a generated message of about `bytes` bytes over
 *   a real SMTP client session (nodemailer's SMTPConnection, which
 *   dot-stuffs on the stream), hashing what it sends as it goes. The message
 *   starts with an `X-Test-Id` header; the body repeats one 64 KiB block of
 *   CRLF lines (some starting with a dot, to exercise dot-stuffing) shared by
 *   every message, so generating 4 GB costs no allocation per message.
 * - startHashingSmtpSink() is a real SMTP server (smtp-server) that hashes
 *   each message as it streams in and keeps only the digests: the SHA-256 of
 *   the whole message and of the part from the `X-Test-Id` line on, which is
 *   what the sender sent (stages prepend their headers above it).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';

const MARKER = 'X-Test-Id:';
const LINE = 80; // 78 characters and CRLF
const BLOCK = (() => {
  const lines: string[] = [];
  for (let i = 0; i < Math.floor((64 * 1024) / LINE); i++) {
    const text = i % 50 === 0 ? `.dot-started line ${i}` : `line ${i} of the block`;
    lines.push(`${text}${'-'.repeat(78 - text.length)}\r\n`);
  }
  return Buffer.from(lines.join(''), 'latin1');
})();

export interface StreamedMailOptions {
  port: number;
  host?: string;
  from: string;
  to: string[];
  /** Unique per message (the X-Test-Id header, part of the Message-ID). */
  id: string;
  /** About this many bytes (rounded up to whole 64 KiB blocks after the headers). */
  bytes: number;
  timeoutMs?: number;
}

export interface StreamedMailResult {
  /** SHA-256 of the message as sent (before dot-stuffing). */
  sha256: string;
  size: number;
  /** The server's reply to the final dot. */
  response: string;
}

function generated(id: string, from: string, to: string[], bytes: number) {
  const head = Buffer.from(
    [
      `${MARKER} ${id}`,
      `From: <${from}>`,
      `To: ${to.map((t) => `<${t}>`).join(', ')}`,
      `Subject: streamed ${id}`,
      `Message-ID: <${id}@streamed.test>`,
      'Date: Tue, 5 May 2026 10:00:00 +0000',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
  const blocks = Math.max(1, Math.ceil((bytes - head.length) / BLOCK.length));
  const size = head.length + blocks * BLOCK.length;
  const hash = createHash('sha256');
  let i = -1;
  const stream = new Readable({
    read() {
      const chunk = i < 0 ? head : i < blocks ? BLOCK : null;
      i++;
      if (chunk) hash.update(chunk);
      this.push(chunk);
    },
  });
  return { stream, size, digest: () => hash.digest('hex') };
}

/** Send one generated message; rejects with the client's error on a refusal. */
export async function sendStreamedMail(opts: StreamedMailOptions): Promise<StreamedMailResult> {
  const timeout = opts.timeoutMs ?? 120_000;
  const conn = new SMTPConnection({
    host: opts.host ?? '127.0.0.1',
    port: opts.port,
    secure: false,
    ignoreTLS: true,
    name: 'client.test',
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    logger: false,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('error', reject);
      conn.connect(() => {
        conn.off('error', reject);
        resolve();
      });
    });
    const msg = generated(opts.id, opts.from, opts.to, opts.bytes);
    const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) =>
      conn.send({ from: opts.from, to: opts.to, size: msg.size }, msg.stream, (err, i) =>
        err ? reject(err) : resolve(i),
      ),
    );
    return { sha256: msg.digest(), size: msg.size, response: info.response };
  } finally {
    conn.quit();
  }
}

export interface HashedMessage {
  mailFrom: string;
  rcptTo: string[];
  /** Bytes received (dot-unstuffed). */
  size: number;
  sha256: string;
  /** The X-Test-Id value, if the message had one. */
  id?: string;
  /** SHA-256 from the X-Test-Id line to the end: the message as its sender sent it. */
  sentSha256?: string;
  mailParams: Record<string, string | true>;
}

export interface HashingSmtpSink {
  host: string;
  port: number;
  readonly messages: readonly HashedMessage[];
  /** Resolve when `count` messages have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<HashedMessage[]>;
  stop(): Promise<void>;
}

/** Finds the X-Test-Id line in the first 64 KiB and hashes from there, chunk by chunk. */
class MarkedHash {
  readonly whole = createHash('sha256');
  readonly #fromMarker = createHash('sha256');
  #head: Buffer | null = Buffer.alloc(0);
  #found = false;
  id: string | undefined;
  size = 0;

  update(chunk: Buffer): void {
    this.size += chunk.length;
    this.whole.update(chunk);
    if (this.#found) {
      this.#fromMarker.update(chunk);
      return;
    }
    if (!this.#head) return;
    this.#head = Buffer.concat([this.#head, chunk]);
    const text = this.#head.toString('latin1');
    const at = text.startsWith(MARKER) ? 0 : text.indexOf(`\r\n${MARKER}`);
    if (at >= 0) {
      const start = at === 0 ? 0 : at + 2;
      const eol = text.indexOf('\r\n', start);
      if (eol < 0) return; // the id line is not complete yet
      this.id = text.slice(start + MARKER.length, eol).trim();
      this.#found = true;
      this.#fromMarker.update(this.#head.subarray(start));
      this.#head = null;
    } else if (this.#head.length > 64 * 1024) {
      this.#head = null;
    }
  }

  sentSha256(): string | undefined {
    return this.#found ? this.#fromMarker.digest('hex') : undefined;
  }
}

export async function startHashingSmtpSink(): Promise<HashingSmtpSink> {
  const messages: HashedMessage[] = [];
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const onData = (stream: SMTPServerDataStream, session: SMTPServerSession, done: (err?: Error) => void) => {
    const hash = new MarkedHash();
    stream.on('data', (c: Buffer) => hash.update(c));
    stream.on('error', (err) => done(err));
    stream.on('end', () => {
      const env = session.envelope;
      const msg: HashedMessage = {
        mailFrom: env.mailFrom ? env.mailFrom.address : '',
        rcptTo: env.rcptTo.map((r) => r.address),
        size: hash.size,
        sha256: hash.whole.digest('hex'),
        id: hash.id,
        sentSha256: hash.sentSha256(),
        mailParams: (env.mailFrom ? env.mailFrom.args : false) || {},
      };
      messages.push(msg);
      events.emit('message');
      done();
    });
  };
  const server = new SMTPServer({
    name: 'hashing-sink.test',
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    maxClients: 10_000,
    onData,
  });
  const host = '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => {});
  const addr = server.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    host,
    port,
    messages,
    waitFor(count, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (messages.length < count) return;
          clearTimeout(timer);
          events.off('message', check);
          resolve([...messages]);
        };
        const timer = setTimeout(() => {
          events.off('message', check);
          reject(new Error(`hashing sink: ${messages.length} of ${count} messages within ${timeoutMs} ms`));
        }, timeoutMs);
        events.on('message', check);
        check();
      });
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Do not wait for clients a failed test left connected.
        for (const c of server.connections as Set<{ close(): void }>) c.close();
      }),
  };
}
