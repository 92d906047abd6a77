/**
 * SMTP clients for tests: sendMail() drives a real client (nodemailer) as a
 * sending MTA would, with an explicit envelope; smtpConversation() talks raw
 * SMTP over a socket, one command at a time, for protocol tests (reply codes
 * of single commands, bare LF / SMTP smuggling payloads, pipelining) where a
 * well-behaved client library would refuse or repair the input.
 */
import { connect, type Socket } from 'node:net';
import { createTransport } from 'nodemailer';

export interface SendMailOptions {
  port: number;
  host?: string;
  from: string;
  to: string[];
  /** The full message (RFC 5322) as bytes or text; or a subject and text nodemailer composes. */
  raw?: Buffer | string;
  subject?: string;
  text?: string;
  /** Declare SIZE= in MAIL FROM (RFC 1870). */
  size?: number;
  /** EHLO name (default "client.test"). */
  helo?: string;
  timeoutMs?: number;
}

export interface SendMailResult {
  /** The server's reply to the final dot, e.g. "250 2.0.0 Ok: queued as 01J...". */
  response: string;
  accepted: string[];
  rejected: string[];
}

/**
 * Send one message. Resolves with the server's final reply; rejects with
 * nodemailer's error (its `responseCode` and `response` carry the refusal).
 */
export async function sendMail(opts: SendMailOptions): Promise<SendMailResult> {
  const timeout = opts.timeoutMs ?? 30_000;
  const transport = createTransport({
    host: opts.host ?? '127.0.0.1',
    port: opts.port,
    secure: false,
    ignoreTLS: true,
    name: opts.helo ?? 'client.test',
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  try {
    const envelope = {
      from: opts.from,
      to: opts.to,
      ...(opts.size !== undefined ? { size: opts.size } : {}),
    };
    const message =
      opts.raw !== undefined
        ? { envelope, raw: opts.raw }
        : {
            envelope,
            from: opts.from,
            to: opts.to,
            subject: opts.subject ?? 'test',
            text: opts.text ?? 'test',
          };
    const info = await transport.sendMail(message);
    const addr = (a: unknown) => (typeof a === 'string' ? a : (a as { address: string }).address);
    return { response: info.response, accepted: info.accepted.map(addr), rejected: info.rejected.map(addr) };
  } finally {
    transport.close();
  }
}

/**
 * One step of a conversation: a command line (CRLF is added), raw bytes sent
 * as they are, or something the test does between two commands (stop a
 * server, check a stream) with nothing sent.
 */
export type ConversationStep =
  | string
  | { raw: string | Uint8Array; reply?: boolean; replies?: number }
  | { action: () => Promise<void> | void };

/**
 * Connect, read the greeting, then send each step and read its reply (a raw
 * step with `reply: false` expects none, e.g. the first part of a message;
 * `replies: n` expects n, e.g. a pipelined group of commands, RFC 2920; an
 * action step sends nothing).
 * Resolves with every reply in order, the greeting first; multi-line replies
 * are joined with "\n". If the server closes the connection, resolves with
 * the replies so far (a test can assert that it was cut off).
 */
export function smtpConversation(
  port: number,
  steps: ConversationStep[],
  opts: { host?: string; timeoutMs?: number } = {},
): Promise<string[]> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const replies: string[] = [];
    const socket: Socket = connect({ host: opts.host ?? '127.0.0.1', port });
    let buffer = '';
    let current: string[] = [];
    let waiting: { res: () => void; rej: (e: Error) => void; until: number } | null = null;
    let closed = false;
    let timer: NodeJS.Timeout | undefined;

    const finish = (err?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(replies);
    };
    /** Wait for the next `n` replies (counted from now). */
    const waitReply = (n = 1) =>
      new Promise<void>((res, rej) => {
        if (closed) return rej(new ClosedError());
        waiting = { res, rej, until: replies.length + n };
        clearTimeout(timer);
        timer = setTimeout(
          () =>
            finish(
              new Error(`no SMTP reply within ${timeoutMs} ms; replies so far: ${JSON.stringify(replies)}`),
            ),
          timeoutMs,
        );
      });

    socket.setEncoding('latin1');
    socket.on('data', (data: string) => {
      buffer += data;
      let nl = buffer.indexOf('\r\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        current.push(line);
        // RFC 5321 §4.2.1: "xyz-" continues a reply, "xyz " or "xyz" ends it.
        if (/^\d{3}(?: |$)/.test(line)) {
          replies.push(current.join('\n'));
          current = [];
          if (waiting && replies.length >= waiting.until) {
            const w = waiting;
            waiting = null;
            clearTimeout(timer);
            w.res();
          }
        }
        nl = buffer.indexOf('\r\n');
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // The server closing on us while we still write is an ending, not a failure of the test's client.
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return;
      if (!closed) finish(err);
    });
    socket.on('close', () => {
      closed = true;
      const w = waiting;
      waiting = null;
      w?.rej(new ClosedError());
    });

    (async () => {
      await waitReply(); // greeting
      for (const step of steps) {
        if (closed) break;
        if (typeof step !== 'string' && 'action' in step) {
          await step.action();
          continue;
        }
        const expected = typeof step === 'string' ? 1 : step.reply === false ? 0 : (step.replies ?? 1);
        const pending = expected > 0 ? waitReply(expected) : undefined;
        socket.write(typeof step === 'string' ? `${step}\r\n` : step.raw);
        if (pending) await pending;
      }
      finish();
    })().catch((err) => {
      if (err instanceof ClosedError) finish();
      else finish(err as Error);
    });
  });
}

class ClosedError extends Error {}
