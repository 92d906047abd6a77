/**
 * The autoconfig endpoint: a small node:http (or node:https) server that
 * answers the client-configuration requests of autoconfig-routes.ts and
 * nothing else. It faces the Internet, so it is strict: known paths and
 * methods only (404, 405 with Allow), a request body only where one is
 * expected and at most MAX_BODY_BYTES (413), small headers, short header,
 * request and idle timeouts, a connection cap. Logs say which document was
 * asked for and for which domain, never the address or the client IP.
 *
 * With `tls` the certificate and key are read from PEM files at start (a bad
 * pair fails the start, naming the files) and read again when either file
 * changes, so a renewed certificate is used without a restart.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from '@sluice/log';
import { autoconfigMetrics, type Metrics } from '@sluice/telemetry';
import { type AutoconfigOptions, resolveAutoconfig } from './autoconfig-options.ts';
import { type AutoconfigAnswer, answerAutoconfig, routeOf } from './autoconfig-routes.ts';

/** An Autodiscover request is a few hundred bytes; anything much larger is not one. */
export const MAX_BODY_BYTES = 16 * 1024;
export const MAX_HEADER_BYTES = 8 * 1024;
/** A client has this long to send its request headers (slow-loris guard). */
export const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 15_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const TIMEOUT_CHECK_MS = 1_000;
const MAX_CONNECTIONS = 512;
const CERT_POLL_MS = 5_000;

export interface AutoconfigServerOptions extends AutoconfigOptions {
  /** reusePort: share the port with the other processes of `processes: N` (SO_REUSEPORT). */
  listen: { host: string; port: number; reusePort?: boolean };
  /** PEM files; `pollIntervalMs` is how often they are checked for a renewal (default 5 s). */
  tls?: { certFile: string; keyFile: string; pollIntervalMs?: number };
  logger: Logger;
  /** The process metrics: requests are counted as sluice_autoconfig_requests_total{document,status}. */
  metrics?: Metrics;
}

export interface AutoconfigServer {
  readonly port: number;
  close(): Promise<void>;
}

function loadPair(tls: { certFile: string; keyFile: string }): SecureContextOptions {
  const pair = { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
  createSecureContext(pair); // throws on a mismatched or half-written pair
  return pair;
}

class BodyTooLarge extends Error {}

/** The answer to a request Node's parser or timers refused before it reached the handler. */
const CLIENT_ERROR_STATUS: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
};

/** The body as UTF-8, or BodyTooLarge past `limit` bytes (checked on Content-Length first, then as it arrives). */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(
  res: ServerResponse,
  a: Pick<AutoconfigAnswer, 'status' | 'contentType' | 'body' | 'headers'>,
): void {
  res.writeHead(a.status, {
    'content-type': a.contentType,
    'content-length': Buffer.byteLength(a.body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...a.headers,
  });
  res.end(a.body);
}

function plain(status: number, body: string, headers?: Record<string, string>): AutoconfigAnswer {
  return {
    status,
    contentType: 'text/plain; charset=utf-8',
    body: `${body}\n`,
    route: 'none',
    ...(headers ? { headers } : {}),
  };
}

export async function startAutoconfigServer(o: AutoconfigServerOptions): Promise<AutoconfigServer> {
  const config = resolveAutoconfig(o);
  const log = o.logger.child({ component: 'autoconfig' });
  const requests = o.metrics ? autoconfigMetrics(o.metrics.registry).requests : undefined;

  const handle = async (req: IncomingMessage): Promise<AutoconfigAnswer> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://autoconfig.invalid');
    } catch {
      return plain(400, 'bad request target');
    }
    const found = routeOf(url.pathname);
    if (!found) return plain(404, 'not found');
    const method = req.method ?? '';
    if (!found.methods.includes(method)) {
      return { ...plain(405, 'method not allowed', { allow: found.methods.join(', ') }), route: found.route };
    }
    let body: string | undefined;
    if (method === 'POST') {
      try {
        body = await readBody(req, MAX_BODY_BYTES);
      } catch (err) {
        if (!(err instanceof BodyTooLarge)) throw err;
        // Discard the rest (bounded by the request timeout) so the client reads the answer, not a reset.
        req.resume();
        return { ...plain(413, 'request body too large'), route: found.route };
      }
    }
    return answerAutoconfig(config, found.route, {
      method,
      path: url.pathname,
      query: url.searchParams,
      ...(req.headers.host !== undefined ? { host: req.headers.host } : {}),
      ...(body !== undefined ? { body } : {}),
    });
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req).then(
      (answer) => {
        log.debug(
          { route: answer.route, status: answer.status, domain: answer.domain },
          'autoconfig request',
        );
        requests?.inc({ document: answer.route, status: String(answer.status) });
        // The rest of a refused body is discarded, and the connection ends with this answer.
        if (answer.status === 413) res.setHeader('connection', 'close');
        send(res, answer);
      },
      (err: unknown) => {
        log.warn({ err }, 'autoconfig request failed');
        requests?.inc({ document: 'none', status: '500' });
        if (!res.headersSent) send(res, plain(500, 'internal error'));
        else res.destroy();
      },
    );
  };

  const common = {
    maxHeaderSize: MAX_HEADER_BYTES,
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // How often Node checks the two timeouts above (default 30 s would let a slow client hold on 6x longer).
    connectionsCheckingInterval: TIMEOUT_CHECK_MS,
  };
  let server: Server;
  let stopWatching = () => {};
  if (o.tls) {
    const tls = o.tls;
    let pair: SecureContextOptions;
    try {
      pair = loadPair(tls);
    } catch (err) {
      throw new Error(
        `submission.autoconfig.tls: cannot load ${tls.certFile} / ${tls.keyFile}: ${(err as Error).message}`,
      );
    }
    const https = createHttpsServer({ ...common, ...pair, minVersion: 'TLSv1.2' }, onRequest);
    const reload = () => {
      try {
        https.setSecureContext({ ...loadPair(tls), minVersion: 'TLSv1.2' });
        log.info({ certFile: tls.certFile }, 'autoconfig certificate reloaded');
      } catch (err) {
        log.warn(
          { err, certFile: tls.certFile },
          'autoconfig certificate not reloaded; keeping the previous one',
        );
      }
    };
    const interval = tls.pollIntervalMs ?? CERT_POLL_MS;
    watchFile(tls.certFile, { interval }, reload);
    watchFile(tls.keyFile, { interval }, reload);
    stopWatching = () => {
      unwatchFile(tls.certFile, reload);
      unwatchFile(tls.keyFile, reload);
    };
    server = https;
  } else {
    server = createHttpServer(common, onRequest);
  }
  server.maxConnections = MAX_CONNECTIONS;
  server.setTimeout(IDLE_TIMEOUT_MS, (socket) => socket.destroy());
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    socket.end(
      `HTTP/1.1 ${CLIENT_ERROR_STATUS[err.code ?? ''] ?? '400 Bad Request'}\r\nconnection: close\r\n\r\n`,
    );
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(
        { port: o.listen.port, host: o.listen.host, reusePort: o.listen.reusePort === true },
        () => {
          server.off('error', reject);
          resolve();
        },
      );
    });
  } catch (err) {
    stopWatching();
    throw new Error(
      `submission.autoconfig.listen: cannot listen on ${o.listen.host}:${o.listen.port}: ${(err as Error).message}`,
    );
  }
  const port = (server.address() as AddressInfo).port;
  log.info(
    { host: o.listen.host, port, tls: o.tls !== undefined, domains: config.domains },
    'autoconfig endpoint listening',
  );
  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        stopWatching();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
