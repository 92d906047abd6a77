/**
 * Per-session policy the SMTP parser does not have, on one smtp-server
 * connection (decision 0020: a thin layer at named seams, `send` and
 * `_onCommand` wrapped per instance, the socket observed alongside the parser):
 *
 * - Command lines that do not end in CRLF (RFC 5321 §2.3.8): a bare LF at
 *   the end or a bare CR inside. smtp-server's parser takes a bare LF as a
 *   line end, so a client (or a smuggler) could frame commands in a way a
 *   stricter hop reads differently. Answered 500 5.5.2, then disconnect (as
 *   Postfix's smtpd_forbid_bare_newline does, which answers 521; the command
 *   itself is never run). Bare line ends in the message are the reader's.
 * - Unauthorised pipelining (RFC 2920 §3.1, RFC 5321 §4.5.3.2; Postfix
 *   smtpd_forbid_unauth_pipelining): input that arrives after a sync point
 *   before our reply to it. Sync points: EHLO, HELO, DATA, STARTTLS (also the
 *   CVE-2011-0411 command injection), QUIT, NOOP, and every command and the
 *   final dot while PIPELINING was not negotiated (HELO, or before EHLO).
 *   Answered 554 5.5.0, then disconnect.
 * - Errors (Postfix smtpd_soft/hard_error_limit): after `softErrors` error
 *   replies each next command waits 1 s more than the last; at `hardErrors`
 *   421 4.7.0 and disconnect.
 * - Unknown recipients: at `unknownRecipients`, 421 4.7.0 and disconnect.
 * - Time: a whole command must arrive within `commandTimeout` of our last
 *   reply, the message content within `dataTimeout` of the 354, the session
 *   within `maxSessionTime`; trickling bytes resets none of them (slow loris).
 *   Then 421 4.4.2.
 *
 * smtp-server closes the connection after every 421 it sends.
 */
import type { Socket } from 'node:net';
import { replies, type SmtpReply } from '@sluice/smtp';
import type { SmtpConnectionHandle } from './enhanced-replies.ts';

export interface SessionLimits {
  softErrors: number;
  hardErrors: number;
  unknownRecipients: number;
  commandTimeoutMs: number;
  dataTimeoutMs: number;
  maxSessionMs: number;
}

/** The smtp-server internals used here; named in decision 0020. */
interface GuardedConnection extends SmtpConnectionHandle {
  _socket: Socket;
  _onCommand(command: Buffer, callback?: () => void): void;
}

export type GuardEvent =
  | 'pipelining'
  | 'bare-newline'
  | 'too-many-errors'
  | 'too-many-unknown'
  | 'timeout'
  | 'session-time';

const SYNC_COMMANDS = new Set(['EHLO', 'HELO', 'LHLO', 'DATA', 'STARTTLS', 'QUIT', 'NOOP']);
const MAX_LINE_SEEN = 4096;

export class SessionGuard {
  private errors = 0;
  private unknown = 0;
  private pipelining = false;
  private mode: 'command' | 'data' | 'tls' = 'command';
  /** Bytes of the current line (command mode) or the last 4 bytes (data mode, for CRLF.CRLF). */
  private line = '';
  private tail = '';
  /** A sync point was read and its reply not yet sent. */
  private awaitingReply = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly sessionTimer: NodeJS.Timeout;
  private ended = false;
  private readonly send: SmtpConnectionHandle['send'];

  private readonly conn: SmtpConnectionHandle;
  private readonly limits: SessionLimits;
  private readonly onEvent: (event: GuardEvent) => void;

  constructor(conn: SmtpConnectionHandle, limits: SessionLimits, onEvent: (event: GuardEvent) => void) {
    this.conn = conn;
    this.limits = limits;
    this.onEvent = onEvent;
    const c = conn as GuardedConnection;
    this.send = conn.send.bind(conn);
    conn.send = (code, data, context) => this.onReply(code, data, context);
    const onCommand = c._onCommand.bind(c);
    c._onCommand = (command, callback) => {
      // After a refusal that ends the session, nothing more the parser read is run.
      if (this.ended) return;
      this.clearTimer();
      const delay = this.errors >= limits.softErrors ? (this.errors - limits.softErrors + 1) * 1000 : 0;
      if (delay > 0) setTimeout(() => onCommand(command, callback), delay).unref();
      else onCommand(command, callback);
    };
    this.watch(c._socket);
    this.sessionTimer = setTimeout(() => this.end('session-time', replies.timedOut), limits.maxSessionMs);
    this.sessionTimer.unref();
  }

  /** Watch the TLS socket after STARTTLS (the session starts over: no PIPELINING until the new EHLO). */
  secured(socket: Socket): void {
    this.mode = 'command';
    this.line = '';
    this.pipelining = false;
    this.awaitingReply = false;
    this.watch(socket);
  }

  noteUnknownRecipient(): void {
    this.unknown++;
  }

  stop(): void {
    this.ended = true;
    this.clearTimer();
    clearTimeout(this.sessionTimer);
  }

  private watching: Socket | undefined;

  private watch(socket: Socket): void {
    this.watching = socket;
    // Only the current socket counts: after STARTTLS the raw one carries ciphertext.
    // Before the parser's listener: a reply sent synchronously while it parses must find our state set.
    socket.prependListener('data', (chunk: Buffer) => {
      if (this.watching === socket) this.onInput(chunk);
    });
    socket.once('close', () => this.stop());
  }

  private onInput(chunk: Buffer): void {
    if (this.ended || this.mode === 'tls') return;
    if (this.awaitingReply) {
      this.violation();
      return;
    }
    let s = chunk.toString('latin1');
    while (s.length > 0 && !this.ended) {
      if (this.mode === 'data') {
        const seen = this.tail + s;
        const end = seen.indexOf('\r\n.\r\n');
        if (end < 0) {
          this.tail = seen.slice(-4);
          return;
        }
        // The final dot (RFC 5321 §4.1.1.4): a sync point unless PIPELINING was negotiated.
        const rest = seen.slice(end + 5);
        this.mode = 'command';
        this.tail = '';
        this.line = '';
        if (!this.pipelining) {
          this.awaitingReply = true;
          if (rest.length > 0) {
            this.violation();
            return;
          }
        }
        s = rest;
        continue;
      }
      const lf = s.indexOf('\n');
      if (lf < 0) {
        // Keep the start (the verb) and the last octet (a CR the LF of the next chunk completes).
        const seen = this.line + s;
        this.line = seen.length > MAX_LINE_SEEN ? seen.slice(0, MAX_LINE_SEEN - 1) + seen.slice(-1) : seen;
        return;
      }
      const raw = this.line + s.slice(0, lf);
      const line = raw.replace(/\r$/, '');
      this.line = '';
      s = s.slice(lf + 1);
      // RFC 5321 §2.3.8: a command line ends in CRLF, and CR appears nowhere else in it.
      if (line === raw || line.includes('\r')) {
        this.end('bare-newline', line === raw ? replies.bareLfCommand : replies.bareCrCommand);
        return;
      }
      const verb = line.split(' ', 1)[0]!.toUpperCase();
      if (verb === 'EHLO') this.pipelining = true;
      if (verb === 'HELO') this.pipelining = false;
      if (SYNC_COMMANDS.has(verb) || !this.pipelining) {
        this.awaitingReply = true;
        if (verb === 'DATA') this.line = '\u0000DATA'; // marks: a 354 starts data mode
        if (verb === 'STARTTLS') this.line = '\u0000TLS';
        if (s.length > 0) {
          this.violation();
          return;
        }
      }
    }
  }

  private onReply(code: number, data?: string | string[] | null, context?: string | false): void {
    if (this.ended && code !== 421) {
      this.send(code, data, context);
      return;
    }
    this.awaitingReply = false;
    if (this.line === '\u0000DATA') {
      this.line = '';
      if (code === 354) {
        this.mode = 'data';
        this.tail = '\r\n'; // the dot may end an empty message at once
      }
    } else if (this.line === '\u0000TLS') {
      this.line = '';
      if (code === 220) this.mode = 'tls';
    }
    this.send(code, data, context);
    if (this.ended || code === 421) return;
    if (code >= 400) this.errors++;
    if (this.unknown >= this.limits.unknownRecipients) {
      this.end('too-many-unknown', replies.tooManyUnknown);
      return;
    }
    if (code >= 400 && this.errors >= this.limits.hardErrors) {
      this.end('too-many-errors', replies.tooManyErrors);
      return;
    }
    this.arm(code === 354 ? this.limits.dataTimeoutMs : this.limits.commandTimeoutMs);
  }

  private arm(ms: number): void {
    this.clearTimer();
    this.timer = setTimeout(() => this.end('timeout', replies.timedOut), ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private violation(): void {
    this.end('pipelining', replies.unauthPipelining);
  }

  private end(event: GuardEvent, reply: SmtpReply): void {
    if (this.ended) return;
    this.stop();
    this.onEvent(event);
    this.send(reply.code, `${reply.enhanced} ${reply.text}`, false);
    this.conn.close();
  }
}
