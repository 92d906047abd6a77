/**
 * Test-only set-up shared by the egress TLS tests (dane.test.ts, mta-sts.test.ts):
 * an openssl certificate workshop in a temp dir, and an egress bed — a real
 * nats-server, a service context with a config whose DNS goes through the
 * given (validating) resolver, SMTP sinks with or without STARTTLS, and one
 * delivery attempt through deliverPart. Each test keeps its own zones,
 * certificates and extra deps in its file. Not a *.test.ts: it runs nothing itself.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bus, EnvelopeDelivery } from '@sluice/bus';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import { createSecureDns, type SecureDns } from '@sluice/dns';
import {
  type Envelope,
  type MailFrom,
  newQueueId,
  parseEnvelope,
  partIdOf,
  type Route,
  type SluiceEvent,
} from '@sluice/proto';
import {
  type NatsTestServer,
  type SmtpSink,
  type SmtpSinkOptions,
  startNats,
  startServiceContext,
  startSmtpSink,
} from '@sluice/test-harness';
import { deliverPart, type EgressDeps } from './deliver.ts';
import { createDnsLookup } from './destination.ts';

export interface KeyAndCert {
  key: Buffer;
  cert: Buffer;
}

/** Certificates made with the openssl CLI in one temp dir (removed by remove()). */
export interface CertWorkshop {
  dir: string;
  openssl(args: string[]): void;
  /** A self-signed certificate `${name}.pem` with key `${name}.key`; `extra` adds e.g. -addext. */
  selfSigned(name: string, cn: string, extra?: string[]): KeyAndCert;
  /** A test CA as ca.pem / ca.key; returns its PEM. */
  createCa(cn: string): Buffer;
  /** A leaf signed by the CA (createCa first), CN the first name, every name a DNS SAN. */
  issue(name: string, sans: string[]): KeyAndCert;
  remove(): void;
}

export function createCertWorkshop(prefix: string): CertWorkshop {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const openssl = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  const read = (name: string): KeyAndCert => ({
    key: readFileSync(join(dir, `${name}.key`)),
    cert: readFileSync(join(dir, `${name}.pem`)),
  });
  const selfSigned = (name: string, cn: string, extra: string[] = []): KeyAndCert => {
    openssl(
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${cn}`].concat(extra, [
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.pem`,
      ]),
    );
    return read(name);
  };
  return {
    dir,
    openssl,
    selfSigned,
    createCa: (cn) => selfSigned('ca', cn, ['-addext', 'basicConstraints=critical,CA:TRUE']).cert,
    issue(name, sans) {
      writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${sans.map((s) => `DNS:${s}`).join(',')}\n`);
      openssl([
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        `/CN=${sans[0]}`,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
      ]);
      openssl(
        ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'].concat(
          ['-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`],
        ),
      );
      return read(name);
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export type DeliveryEvent = Extract<SluiceEvent, { kind: 'delivery' }>;

/** A running egress context against a real nats-server; `deps` may be extended or swapped by the test. */
export interface EgressTlsBed {
  nats: NatsTestServer;
  bus: Bus;
  config: SluiceConfig;
  events: SluiceEvent[];
  /** The validating-resolver client also in deps.secureDns. */
  secureDns: SecureDns;
  deps: EgressDeps;
  /** An SMTP sink, with STARTTLS when given a key and certificate; stopped by stop(). */
  sinkWith(tls?: KeyAndCert, extra?: Omit<SmtpSinkOptions, 'tls'>): Promise<SmtpSink>;
  /** One delivery attempt of `body` to user@domain with the MX on the sink's port. */
  attemptTo(
    domain: string,
    sink: SmtpSink,
    body: Buffer,
    /** MAIL FROM fields beyond the address (e.g. requireTls). */
    mailFrom?: Partial<MailFrom>,
    /** Another route than the domain's MX (a transport). */
    route?: Route,
  ): Promise<{
    disposition: Awaited<ReturnType<typeof deliverPart>>;
    event: DeliveryEvent | undefined;
    envelope: Envelope;
  }>;
  /** The tlsResults counter as `policy/result=value` strings. */
  tlsResults(): Promise<string[]>;
  /** Runs the registered stops (last first), then closes the bus and stops nats. */
  onStop(stop: () => Promise<void>): void;
  stop(): Promise<void>;
}

export async function startEgressTlsBed(name: string, resolver: string): Promise<EgressTlsBed> {
  const toStop: Array<() => Promise<void>> = [];
  const nats = await startNats();
  const config = parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org' },
      nats: { servers: [nats.url] },
      egress: {
        retrySchedule: [0.2],
        connectTimeout: 2,
        greetingTimeout: 5,
        socketTimeout: 10,
        dnsResolver: resolver,
      },
      bus: { queueLifetime: 86400, maxDeliver: 500_000 },
      // MX and address lookups through the same resolver too.
      dns: { servers: [resolver], timeout: 2 },
      log: { level: 'warn' },
    },
    name,
  );
  const started = await startServiceContext(config, name);
  const { bus, events } = started;
  const secureDns = createSecureDns({ resolver, timeoutMs: 2000 });
  const bed: EgressTlsBed = {
    nats,
    bus,
    config,
    events,
    secureDns,
    deps: { ...started.ctx, dns: createDnsLookup(config.dns), secureDns },
    async sinkWith(tls, extra = {}) {
      const s = await startSmtpSink({ ...extra, ...(tls ? { tls } : {}) });
      toStop.push(() => s.stop());
      return s;
    },
    async attemptTo(domain, sink, body, mailFrom = {}, route = { kind: 'mx', domain }) {
      const id = newQueueId();
      const stored = await bus.storeBody(id, body);
      const rcpt = `user@${domain}`;
      const envelope: Envelope = parseEnvelope({
        v: 1,
        id,
        partId: partIdOf(id, `mx:${domain}`, [rcpt]),
        receivedAt: new Date().toISOString(),
        source: 'mx',
        receivedBy: 'mx.example.org',
        client: { ip: '192.0.2.1', helo: 'client.test' },
        mailFrom: { address: 'sender@example.org', ...mailFrom },
        recipients: [{ address: rcpt, original: rcpt }],
        route,
        body: stored.ref,
        prepend: [],
      });
      const d: EnvelopeDelivery = {
        envelope,
        inlineBody: stored.inline,
        deliveryCount: 1,
        streamSeq: 0,
        working: () => {},
      };
      const disposition = await deliverPart(d, { ...bed.deps, mxPort: sink.port });
      const event = events.find(
        (e): e is DeliveryEvent => e.kind === 'delivery' && e.partId === envelope.partId,
      );
      return { disposition, event, envelope };
    },
    async tlsResults() {
      return (await bed.deps.metrics.tlsResults.get()).values.map(
        (v) => `${v.labels.policy}/${v.labels.result}=${v.value}`,
      );
    },
    onStop(stop) {
      toStop.push(stop);
    },
    async stop() {
      for (const stop of toStop.reverse()) await stop();
      await bus.close();
      await nats.stop();
    },
  };
  return bed;
}
