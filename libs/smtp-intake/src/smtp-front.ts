/**
 * The MX's own listening socket, in front of smtp-server (decision 0020).
 * For each accepted connection, before smtp-server sees it:
 *
 *   1. the PROXY header (v1 or v2), only from ingress.proxyFrom;
 *   2. drain: while stopping, new sessions get 421 4.3.2 (RFC 5321 §3.8);
 *   3. admission: total, per-IP and per-network connection limits, 421;
 *      then, when given, `admitRate` (an asynchronous check such as sessions
 *      per IP per minute shared by replicas) with the reply it refuses with;
 *      it is skipped for trusted networks, and a check that fails admits;
 *   4. the session is handed to smtp-server's SMTPConnection with the client
 *      address from step 1, greeted after `greetDelayMs` (0: at once; trusted
 *      networks always at once). smtp-server's own init() waits a fixed
 *      100 ms, which caps a one-message-per-connection client at ~200 msg/s
 *      with 20 sessions (issue 10); hence our own start-up of the session.
 *
 * With `implicitTls` (submissions on 465, RFC 8314 §3.3; the mTLS relay door)
 * the TLS handshake comes between steps 3 and 4, done by smtp-server's own
 * upgrade (its certificate, SNI and client-certificate options); a failed
 * handshake (an unknown or expired client certificate) closes the socket.
 *
 * Refusals at steps 2-3 are written on the raw socket (no session exists).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { replies, type SmtpReply } from '@sluice/smtp';
import type { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { ConnectionLimits } from './connection-limits.ts';
import { type ProxiedAddress, readProxyHeader } from './proxy-header.ts';

export interface FrontOptions {
  hostname: string;
  limits: ConnectionLimits;
  greetDelayMs: number;
  trusted: (ip: string) => boolean;
  proxyFrom: (ip: string) => boolean;
  proxyTimeoutMs: number;
  draining: () => boolean;
  onRefused: (reason: string, ip: string) => void;
  /** After the connection limits: a reply to refuse the session with, or undefined to admit it. */
  admitRate?: (ip: string) => Promise<SmtpReply | undefined>;
  onSession: (conn: unknown, release: () => void) => void;
  /** TLS from the first byte (RFC 8314 §3.3): the handshake before the SMTP greeting. */
  implicitTls?: boolean;
}

/** The client IP as written in envelopes and headers (IPv4-mapped IPv6 becomes IPv4). */
export function plainIp(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/** smtp-server internals this module drives (named in decision 0020). */
interface InternalServer {
  connections: Set<unknown>;
  _onError(err: Error): void;
  _onClientConnect(data: unknown): void;
  _upgrade(socket: Socket, callback: (err: Error | null, tlsSocket?: Socket) => void): void;
}
interface InternalConnection {
  on(event: string, fn: (arg: never) => void): void;
  _setListeners(callback: () => void): void;
  connectionReady(): void;
  send(code: number, data?: string, context?: string | false): void;
  _server: { options: { maxClients?: number } };
}

function refuseRaw(socket: Socket, hostname: string, r: SmtpReply): void {
  socket.end(`${r.code} ${hostname} ${r.enhanced} ${r.text}\r\n`);
  setTimeout(() => socket.destroy(), 1000).unref();
}

export function createFront(smtp: SMTPServer, opts: FrontOptions): Server {
  const server = smtp as unknown as InternalServer;
  const start = (socket: Socket, proxied: ProxiedAddress) => {
    const ip = plainIp(proxied.remoteAddress ?? socket.remoteAddress ?? '');
    if (opts.draining()) {
      opts.onRefused('draining', ip);
      return refuseRaw(socket, opts.hostname, replies.shuttingDown);
    }
    const admission = opts.limits.admit(ip);
    if (!admission.ok) {
      opts.onRefused(`limit-${admission.scope}`, ip);
      const r = admission.scope === 'total' ? replies.tooManyConnections : replies.tooManyFromYou;
      return refuseRaw(socket, opts.hostname, r);
    }
    const release = admission.release;
    socket.once('close', release);
    if (!opts.admitRate || opts.trusted(ip)) return secure(socket, proxied, ip, release);
    opts.admitRate(ip).then(
      (refusal) => {
        if (socket.destroyed) return;
        if (opts.draining()) return refuseRaw(socket, opts.hostname, replies.shuttingDown); // began meanwhile
        if (!refusal) return secure(socket, proxied, ip, release);
        opts.onRefused('limit-rate', ip);
        refuseRaw(socket, opts.hostname, refusal);
      },
      () => {
        if (!socket.destroyed) secure(socket, proxied, ip, release);
      },
    );
  };
  /** With implicitTls, the handshake first; then the session. */
  const secure = (socket: Socket, proxied: ProxiedAddress, ip: string, release: () => void) => {
    if (!opts.implicitTls) return hand(socket, proxied, ip, release);
    server._upgrade(socket, (err, tlsSocket) => {
      if (err || !tlsSocket) {
        opts.onRefused('tls-handshake', ip);
        socket.destroy();
        return;
      }
      hand(tlsSocket, proxied, ip, release);
    });
  };
  const hand = (socket: Socket, proxied: ProxiedAddress, ip: string, release: () => void) => {
    const conn = new SMTPConnection(smtp, socket, {
      remoteAddress: proxied.remoteAddress ?? socket.remoteAddress,
      remotePort: proxied.remotePort ?? socket.remotePort,
    }) as unknown as InternalConnection;
    server.connections.add(conn);
    conn.on('error', (err: never) => server._onError(err));
    conn.on('connect', (data: never) => server._onClientConnect(data));
    opts.onSession(conn, release);
    // As smtp-server's init(), with the pregreet pause ours to set.
    conn._setListeners(() => {
      const delay = opts.trusted(ip) ? 0 : opts.greetDelayMs;
      if (delay > 0) setTimeout(() => conn.connectionReady(), delay).unref();
      else conn.connectionReady();
    });
  };
  return createServer((socket) => {
    socket.on('error', () => undefined); // a reset before the session exists is not our error
    const peer = plainIp(socket.remoteAddress ?? '');
    if (!opts.proxyFrom(peer)) return start(socket, {});
    readProxyHeader(socket, opts.proxyTimeoutMs).then(
      (proxied) => start(socket, proxied),
      () => {
        opts.onRefused('proxy-header', peer);
        socket.destroy();
      },
    );
  });
}
