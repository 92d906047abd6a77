/**
 * A raw SMTP client for the hardening tests: writes exactly the bytes a test
 * gives it (hostile input, pipelined groups, PROXY headers), reads whole
 * replies (RFC 5321 §4.2.1 multi-line), can switch to TLS after STARTTLS, and
 * tells when the server closed the connection.
 */
import { connect, type Socket } from 'node:net';
import { type PeerCertificate, type TLSSocket, connect as tlsConnect } from 'node:tls';

export class RawSmtp {
  socket: Socket;
  private buffer = '';
  private current: string[] = [];
  private readonly replies: string[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  readonly whenClosed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.whenClosed = new Promise((r) => socket.once('close', () => r()));
    this.listen(socket);
  }

  static open(port: number, preamble?: Buffer): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        if (preamble) socket.write(preamble);
        resolve(new RawSmtp(socket));
      });
      socket.once('error', reject);
    });
  }

  private listen(socket: Socket): void {
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString('latin1');
      for (let nl = this.buffer.indexOf('\r\n'); nl >= 0; nl = this.buffer.indexOf('\r\n')) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 2);
        this.current.push(line);
        if (/^\d{3}(?: |$)/.test(line)) {
          this.replies.push(this.current.join('\n'));
          this.current = [];
          this.wake();
        }
      }
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The next reply (its last line), or 'CLOSED' if the server closed first. */
  async reply(timeoutMs = 10_000): Promise<string> {
    return (await this.wholeReply(timeoutMs)).split('\n').at(-1)!;
  }

  /** The next reply with all its lines (an EHLO's extension list), or 'CLOSED'. */
  async wholeReply(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.closed) return 'CLOSED';
      if (Date.now() > deadline) throw new Error('no SMTP reply in time');
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.replies.shift()!;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async command(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** STARTTLS already answered 220: run the handshake over this socket. */
  async startTls(opts: { ca: Buffer; servername: string }): Promise<PeerCertificate> {
    const tls: TLSSocket = await new Promise((resolve, reject) => {
      const s = tlsConnect({ socket: this.socket, ca: opts.ca, servername: opts.servername }, () =>
        resolve(s),
      );
      s.once('error', reject);
    });
    this.socket = tls;
    this.listen(tls);
    return tls.getPeerCertificate();
  }

  close(): void {
    this.socket.destroy();
  }
}
