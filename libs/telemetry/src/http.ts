/**
 * The operations endpoint of a process: GET /metrics (Prometheus text format),
 * /healthz (liveness: is the process able to work at all) and /readyz
 * (readiness: should it get traffic now — e.g. NATS connected, not stopping).
 * Health answers are 200 or 503 with a JSON body {ok, checks}; a check that
 * throws or takes longer than the timeout counts as not ok, so a hung
 * dependency fails the probe instead of hanging it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.ts';

export interface HealthReport {
  ok: boolean;
  checks: Record<string, boolean | string>;
}

export type HealthCheck = () => Promise<HealthReport>;

export interface HttpServerOptions {
  host: string;
  /** 0: any free port (see the returned port). */
  port: number;
  metrics: Metrics;
  /** Liveness (default: always ok). */
  health?: HealthCheck;
  /** Readiness (default: always ok). */
  ready?: HealthCheck;
  /** How long a check may take, ms (default 5000). */
  checkTimeoutMs?: number;
}

export interface HttpServer {
  readonly port: number;
  close(): Promise<void>;
}

const alwaysOk: HealthCheck = async () => ({ ok: true, checks: {} });

async function runCheck(check: HealthCheck, timeoutMs: number): Promise<HealthReport> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<HealthReport>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, checks: { error: `no answer within ${timeoutMs} ms` } }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([
      check().catch((err: unknown) => ({
        ok: false,
        checks: { error: String((err as Error)?.message ?? err) },
      })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const timeoutMs = opts.checkTimeoutMs ?? 5000;
  const probe = async (res: ServerResponse, check: HealthCheck) => {
    const report = await runCheck(check, timeoutMs);
    send(res, report.ok ? 200 : 503, 'application/json', `${JSON.stringify(report)}\n`);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, 'text/plain', 'method not allowed\n');
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      return send(res, 200, opts.metrics.registry.contentType, await opts.metrics.registry.metrics());
    }
    if (path === '/healthz') return probe(res, opts.health ?? alwaysOk);
    if (path === '/readyz') return probe(res, opts.ready ?? alwaysOk);
    return send(res, 404, 'text/plain', 'not found: try /metrics, /healthz or /readyz\n');
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain', `${String((err as Error)?.message ?? err)}\n`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Scrapers keep connections alive; do not wait for them.
        server.closeAllConnections();
      }),
  };
}
