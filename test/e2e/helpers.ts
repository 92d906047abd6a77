/**
 * Small helpers shared by the end-to-end tests: where the ingress listens,
 * the queue id in a 250 reply, a log sink that keeps test output quiet, and
 * the pipeline most e2e files start (every stage in one process), a lookup on
 * its loopback DNS, a plain-text test message, and `sluice queue ... --json`
 * run as the CLI runs it.
 */
import { randomBytes } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { Writable } from 'node:stream';
import { parseConfig } from '@sluice/config';
import type { QueueControlReply } from '@sluice/proto';
import { type Runtime, startRuntime } from '@sluice/runtime';
import {
  type DnsRecord,
  type DnsServer,
  type NatsTestServer,
  type SmtpSink,
  startDnsServer,
  startNats,
  startSmtpSink,
} from '@sluice/test-harness';
import { runQueueCommand } from '../../cli/src/queue-command.ts';
import { allServices } from '../../cli/src/services.ts';

export { type SluiceProcess, sluiceBin, startSluiceProcess } from '@sluice/test-harness';

export function devNull(): NodeJS.WritableStream {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

export function ingressPort(rt: Runtime): number {
  const info = rt.service('ingress')?.info?.() as { ports?: number[] } | undefined;
  const port = info?.ports?.[0];
  if (!port) throw new Error(`ingress did not report a port: ${JSON.stringify(info)}`);
  return port;
}

/** "250 2.0.0 Ok: queued as 01J..." -> the queue id. */
export function queueIdFromReply(reply: string): string {
  const m = /queued as ([0-9A-Z]{10,40})/.exec(reply);
  if (!m) throw new Error(`no queue id in reply: ${reply}`);
  return m[1]!;
}

/** Every stage in one process, as `sluice run` starts them, and what it talks to. */
export interface Pipeline {
  nats: NatsTestServer;
  /** The outside world: point transports at sink.port. */
  sink: SmtpSink;
  dns: DnsServer;
  rt: Runtime;
  /** Where the ingress listens. */
  port: number;
  /** Stops the runtime, then the sink and DNS, then nats. */
  stop(): Promise<void>;
}

/**
 * Starts a real nats-server, an SMTP sink, loopback DNS serving `records`, and
 * every stage with a config made of the shared part (hostname mx.example.org,
 * that nats, ingress on a free loopback port, DNS on that server with a 2 s
 * timeout, log level warn) and `settings(sink)`; `settings` may add to
 * `ingress` and `dns` (merged one level deep) and sets everything else.
 */
export async function startPipeline(
  name: string,
  records: DnsRecord[],
  settings: (sink: SmtpSink) => Record<string, unknown> & {
    ingress?: Record<string, unknown>;
    dns?: Record<string, unknown>;
  },
): Promise<Pipeline> {
  const nats = await startNats();
  const sink = await startSmtpSink({ port: 0 });
  const dns = await startDnsServer(records);
  const stopAround = async () => {
    await Promise.all([sink.stop(), dns.stop()]);
    await nats.stop();
  };
  let rt: Runtime | undefined;
  try {
    const own = settings(sink);
    const config = parseConfig(
      {
        hostname: 'mx.example.org',
        nats: { servers: [nats.url] },
        log: { level: 'warn' },
        ...own,
        ingress: { listen: [{ host: '127.0.0.1', port: 0 }], ...own.ingress },
        dns: { servers: [dns.address], timeout: 2, ...own.dns },
      },
      name,
    );
    const started = await startRuntime({ config, services: allServices, logDestination: devNull() });
    rt = started;
    return {
      nats,
      sink,
      dns,
      rt: started,
      port: ingressPort(started),
      async stop() {
        await started.stop();
        await stopAround();
      },
    };
  } catch (err) {
    await rt?.stop();
    await stopAround();
    throw err;
  }
}

/** resolve(name, type) against the loopback DNS server: the `resolver` option of mailauth. */
export function lookupVia(dns: DnsServer): (name: string, type: string) => Promise<unknown> {
  const resolver = new Resolver();
  resolver.setServers([dns.address]);
  return (name, type) => resolver.resolve(name, type);
}

/** A short text/plain message with a fresh Message-ID; its body names the subject. */
export function plainTextMessage(from: string, to: string, subject: string): Buffer {
  return Buffer.from(
    [
      `From: ${from}`,
      `To: ${to}`,
      `Subject: ${subject}`,
      `Message-ID: <${randomBytes(8).toString('hex')}@e2e.test>`,
      `Date: ${new Date().toUTCString()}`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `body of ${subject}`,
      '',
    ].join('\r\n'),
  );
}

/** `sluice queue ARGS --json` against a running egress (config file as the CLI takes it): exit code and answer. */
export async function queueCli(
  configFile: string,
  args: string[],
): Promise<{ code: number; reply?: QueueControlReply; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runQueueCommand([...args, '--config', configFile, '--json'], {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
  });
  return { code, reply: out.length > 0 ? (JSON.parse(out.join('\n')) as QueueControlReply) : undefined, err };
}
