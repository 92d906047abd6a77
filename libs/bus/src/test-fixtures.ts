/**
 * Shared helpers of the bus tests (not exported by the package): a valid
 * envelope for a body, a logger that records what it was told, a connected
 * Bus on a test server, and that Bus on a nats-server of its own for test
 * files that need nothing else. (Polling waits: waitUntil of the harness.)
 */
import { type Envelope, newQueueId, sha256Hex } from '@sluice/proto';
import { type NatsTestServer, startNats } from '@sluice/test-harness';
import { Bus } from './bus.ts';
import type { BusLog } from './bus-log.ts';
import { type BusConfig, defaultBusConfig } from './config.ts';

export function envelopeFor(body: Uint8Array, overrides: Partial<Envelope> = {}): Envelope {
  return {
    v: 1,
    id: newQueueId(),
    receivedAt: new Date().toISOString(),
    source: 'mx',
    receivedBy: 'mx.example.test',
    client: { ip: '192.0.2.10', helo: 'client.example.test' },
    mailFrom: { address: 'alice@example.org' },
    recipients: [{ address: 'bob@example.net', original: 'bob@example.net', status: 'pending' }],
    body: { kind: 'inline', size: body.length, sha256: sha256Hex(body) },
    prepend: [],
    hops: [],
    ...overrides,
  };
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: object;
  msg?: string;
}

export function recordingLog(): BusLog & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (fields: object, msg?: string): void => {
      lines.push({ level, fields, msg });
    };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export async function connectTestBus(
  servers: string[],
  overrides: Partial<BusConfig> = {},
  log: BusLog = recordingLog(),
): Promise<Bus> {
  const bus = await Bus.connect(defaultBusConfig({ servers, name: 'bus-test', ...overrides }), log);
  try {
    await bus.ensureTopology();
  } catch (err) {
    await bus.close(); // an open connection would keep the test process alive
    throw err;
  }
  return bus;
}

export interface TestBus {
  bus: Bus;
  nats: NatsTestServer;
  /** Closes the bus, then stops the server. */
  stop(): Promise<void>;
}

/** A fresh nats-server with a Bus connected to it (topology declared). */
export async function startTestBus(overrides: Partial<BusConfig> = {}): Promise<TestBus> {
  const nats = await startNats();
  let bus: Bus;
  try {
    bus = await connectTestBus([nats.url], overrides);
  } catch (err) {
    await nats.stop();
    throw err;
  }
  return {
    bus,
    nats,
    stop: async () => {
      await bus.close();
      await nats.stop();
    },
  };
}

export const encoder = new TextEncoder();
