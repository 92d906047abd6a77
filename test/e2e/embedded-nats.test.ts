/**
 * The embedded nats-server of `sluice run`, made safe (docs/decisions/0007),
 * each time with the real command (cli/bin/sluice) and a real nats-server:
 * - Ctrl-C from a terminal (SIGINT to the whole process group) with a message
 *   in flight: Sluice finishes it, stops within seconds, and after a restart
 *   the message has been delivered exactly once;
 * - a second `sluice run` on the same data dir refuses to start, names the
 *   dir and the pid, and leaves the first one working;
 * - the server wants the generated token: an unauthenticated client is
 *   refused, and the token shows in no output;
 * - kill -9 of the server: Sluice starts it again and mail flows.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { Bus, defaultBusConfig } from '@sluice/bus';
import { createLogger } from '@sluice/log';
import {
  freePort,
  type SluiceProcess,
  type SmtpSink,
  sendMail,
  sluiceCommand,
  startDnsServer,
  startSluiceCommand,
  startSmtpSink,
  waitForDrainedQueues,
  waitUntil,
} from '@sluice/test-harness';
import { devNull } from './helpers.ts';

/** An empty DNS server (every name NXDOMAIN: SPF and DMARC none); a dead one would make the filter tempfail. */
let deadEndDns: Awaited<ReturnType<typeof startDnsServer>>;
before(async () => {
  deadEndDns = await startDnsServer([]);
});
after(async () => {
  await deadEndDns?.stop();
});

interface Bed {
  dir: string;
  dataDir: string;
  configFile: string;
  smtpPort: number;
  natsPort: number;
}

async function writeBed(name: string, sinkPort: number, extraYaml = ''): Promise<Bed> {
  const dir = mkdtempSync(join(tmpdir(), `sluice-${name}-`));
  const dataDir = join(dir, 'nats');
  const smtpPort = await freePort();
  const natsPort = await freePort();
  const configFile = join(dir, 'sluice.yaml');
  writeFileSync(
    configFile,
    `hostname: mx.example.org
domains: { primary: example.org }
routing: { forwards: { alice@example.org: [alice@example.net] } }
transports: { example.net: { host: 127.0.0.1, port: ${sinkPort} } }
nats: { embedded: { port: ${natsPort}, dataDir: ${dataDir}, syncAlways: false } }
ingress: { listen: [{ host: 127.0.0.1, port: ${smtpPort} }] }
dns: { servers: ["${deadEndDns.address}"], timeout: 1 }
${extraYaml}`,
  );
  return { dir, dataDir, configFile, smtpPort, natsPort };
}

const token = (bed: Bed) => readFileSync(join(bed.dataDir, 'auth-token'), 'utf8').trim();

function mail(subject: string) {
  return Buffer.from(
    `From: someone@sender.test\r\nTo: alice@example.org\r\nSubject: ${subject}\r\n\r\nhi\r\n`,
  );
}

/** Send until the ingress queues it (it answers 451 while NATS is away). */
async function sendUntilQueued(port: number, subject: string): Promise<void> {
  let last = '';
  await waitUntil(
    () => `a 250 from the ingress (last: ${last})`,
    async () => {
      const r = await sendMail({
        port,
        from: 'someone@sender.test',
        to: ['alice@example.org'],
        raw: mail(subject),
      })
        .then((x) => x.response)
        .catch((err: Error) => err.message);
      last = r;
      return /^250/.test(r);
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
}

/** After a test: SIGKILL Sluice if still running, and its nats-server (own process group) too. */
function kill(proc: SluiceProcess | undefined, bed?: Bed) {
  if (proc && proc.child.exitCode === null && proc.child.signalCode === null) {
    try {
      process.kill(-proc.child.pid!, 'SIGKILL');
    } catch {
      proc.child.kill('SIGKILL');
    }
  }
  try {
    // Only the nats-server of this test's data dir: a stale pid file may name a reused pid.
    const pid = bed && natsPidOf(bed);
    if (pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(bed.dataDir))
      process.kill(pid, 'SIGKILL');
  } catch {
    // no pid file, or the server is gone already
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const natsPidOf = (bed: Bed) => Number(readFileSync(join(bed.dataDir, 'run', 'nats-server.pid'), 'utf8'));

describe('Ctrl-C with a message in flight', () => {
  let sink: SmtpSink;
  let bed: Bed;
  let proc: SluiceProcess | undefined;
  let arrived: () => void;
  const inFlight = new Promise<void>((r) => {
    arrived = r;
  });
  const HOLD_MS = 1500;

  before(async () => {
    // The remote server takes HOLD_MS to answer the first message: it is in flight when Ctrl-C comes.
    let first = true;
    sink = await startSmtpSink({
      beforeReply: async () => {
        if (!first) return;
        first = false;
        arrived();
        await new Promise((r) => setTimeout(r, HOLD_MS));
      },
    });
    // ackWait short, so that an unacked message would come back while the test still looks.
    bed = await writeBed('ctrlc', sink.port, 'bus: { ackWait: 5 }\n');
  });
  after(async () => {
    kill(proc, bed);
    await sink.stop();
    rmSync(bed.dir, { recursive: true, force: true });
  });

  test('finishes the delivery, stops in seconds, and delivers it exactly once', async (t) => {
    proc = await startSluiceCommand(['--config', bed.configFile], { detached: true });
    const natsPid = natsPidOf(bed);
    const reply = await sendMail({
      port: bed.smtpPort,
      from: 'someone@sender.test',
      to: ['alice@example.org'],
      raw: mail('in flight at ctrl-c'),
    });
    assert.match(reply.response, /^250/);
    await inFlight;

    const t0 = performance.now();
    process.kill(-proc.child.pid!, 'SIGINT'); // what a terminal does on Ctrl-C: the whole group
    const code = await proc.exited;
    const shutdownMs = performance.now() - t0;
    t.diagnostic(`shutdown after Ctrl-C took ${Math.round(shutdownMs)} ms (remote reply held ${HOLD_MS} ms)`);
    assert.equal(code, 0, proc.stderr());
    assert.ok(shutdownMs < 5000 + HOLD_MS, `shutdown took ${shutdownMs} ms`);
    assert.ok(!alive(natsPid), 'the nats-server was stopped with Sluice');
    assert.equal(sink.messages.length, 1, 'the in-flight delivery finished during the stop');

    proc = await startSluiceCommand(['--config', bed.configFile], { detached: true });
    const log = createLogger({ level: 'silent', instance: 'test', destination: devNull() as never });
    const bus = await Bus.connect(
      defaultBusConfig({ servers: [`nats://127.0.0.1:${bed.natsPort}`], token: token(bed) }),
      log,
    );
    try {
      await waitForDrainedQueues(bus, 20_000);
    } finally {
      await bus.close();
    }
    assert.equal(sink.messages.length, 1, 'delivered exactly once across the restart');
    process.kill(-proc.child.pid!, 'SIGTERM');
    assert.equal(await proc.exited, 0);
  });
});

describe('one sluice per data dir', () => {
  let sink: SmtpSink;
  let bed: Bed;
  let first: SluiceProcess | undefined;
  before(async () => {
    sink = await startSmtpSink();
    bed = await writeBed('lock', sink.port, 'http: { listen: { host: 127.0.0.1, port: 0 } }\n');
  });
  after(async () => {
    kill(first, bed);
    await sink.stop();
    rmSync(bed.dir, { recursive: true, force: true });
  });

  test('a second sluice run on the same data dir refuses to start and leaves the first alone', async () => {
    first = await startSluiceCommand(['--config', bed.configFile], { detached: true });
    const natsPid = natsPidOf(bed);
    const second = spawnSync(sluiceCommand, ['run', '--config', bed.configFile], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(second.status, 1, second.stderr);
    const lines = second.stderr.trim().split('\n');
    assert.equal(lines.length, 1, second.stderr);
    assert.match(
      lines[0]!,
      new RegExp(`${bed.dataDir} is in use by another sluice \\(pid ${first.child.pid}\\)`),
    );
    assert.ok(alive(natsPid), "the first instance's nats-server is untouched");
    await sendUntilQueued(bed.smtpPort, 'still working');
    await sink.waitFor((m) => m.raw.includes(Buffer.from('still working')), 20_000);
    process.kill(first.child.pid!, 'SIGTERM');
    assert.equal(await first.exited, 0, first.stderr());
  });
});

describe('embedded nats-server credentials and supervision', () => {
  let sink: SmtpSink;
  let bed: Bed;
  let proc: SluiceProcess | undefined;
  before(async () => {
    sink = await startSmtpSink();
    bed = await writeBed('auth', sink.port);
    proc = await startSluiceCommand(['--config', bed.configFile], { detached: true });
  });
  after(async () => {
    kill(proc, bed);
    await sink.stop();
    rmSync(bed.dir, { recursive: true, force: true });
  });

  test('refuses clients without the generated token, which no output shows', async () => {
    const secret = token(bed);
    assert.ok(secret.length >= 32);
    assert.equal(statSync(join(bed.dataDir, 'auth-token')).mode & 0o777, 0o600);
    assert.equal(statSync(join(bed.dataDir, 'nats-server.conf')).mode & 0o777, 0o600);
    await assert.rejects(
      connect({ servers: `nats://127.0.0.1:${bed.natsPort}`, reconnect: false, timeout: 2000 }),
      /authorization|auth/i,
    );
    const nc = await connect({
      servers: `nats://127.0.0.1:${bed.natsPort}`,
      token: secret,
      reconnect: false,
    });
    await nc.close();

    const check = spawnSync(sluiceCommand, ['check-config', bed.configFile], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stderr);
    assert.ok(!`${check.stdout}${check.stderr}`.includes(secret), 'check-config shows no secret');
    const trace = spawnSync(sluiceCommand, ['trace', '01NOSUCHMESSAGE0000', '--config', bed.configFile], {
      encoding: 'utf8',
    });
    assert.equal(trace.status, 1, `trace connects with the token: ${trace.stderr}`);
    assert.ok(!`${trace.stdout}${trace.stderr}`.includes(secret));
    assert.ok(!`${proc!.stdout()}${proc!.stderr()}`.includes(secret), 'the logs show no secret');
  });

  test('kill -9 of the nats-server: Sluice starts it again and mail flows', async () => {
    const before = natsPidOf(bed);
    process.kill(before, 'SIGKILL');
    await waitUntil(
      'the nats-server restarted',
      () => proc!.stdout().includes('embedded nats-server restarted'),
      {
        timeoutMs: 20_000,
      },
    );
    assert.notEqual(natsPidOf(bed), before);
    await sendUntilQueued(bed.smtpPort, 'after the crash');
    await sink.waitFor((m) => m.raw.includes(Buffer.from('after the crash')), 30_000);
    assert.ok(!`${proc!.stdout()}${proc!.stderr()}`.includes(token(bed)), 'the logs show no secret');
    process.kill(proc!.child.pid!, 'SIGTERM');
    assert.equal(await proc!.exited, 0, proc!.stderr());
  });
});

describe('an embedded nats-server that keeps dying', () => {
  let sink: SmtpSink;
  let bed: Bed;
  let proc: SluiceProcess | undefined;
  before(async () => {
    sink = await startSmtpSink();
    bed = await writeBed('dying', sink.port);
    proc = await startSluiceCommand(['--config', bed.configFile], { detached: true });
  });
  after(async () => {
    kill(proc, bed);
    await sink.stop();
    rmSync(bed.dir, { recursive: true, force: true });
  });

  test('after 6 deaths within a minute Sluice stops and exits 1, for its supervisor', async (t) => {
    let killed = 0;
    const t0 = performance.now();
    while (proc!.child.exitCode === null && killed < 6) {
      const pid = natsPidOf(bed);
      process.kill(pid, 'SIGKILL');
      killed++;
      if (killed < 6) {
        await waitUntil(
          `restart number ${killed}`,
          () => (proc!.stdout().match(/embedded nats-server restarted/g) ?? []).length === killed,
          { timeoutMs: 20_000 },
        );
      }
    }
    const lastKill = performance.now();
    const code = await proc!.exited;
    t.diagnostic(`exited ${Math.round(performance.now() - lastKill)} ms after the last kill`);
    assert.equal(code, 1, proc!.stderr());
    assert.match(proc!.stderr(), /sluice: stopped: the embedded nats-server died 6 times within 60 s/);
    assert.ok(performance.now() - t0 < 60_000);
    // What the supervisor then does: start it again, on the same data dir (lock free or stale).
    proc = await startSluiceCommand(['--config', bed.configFile], { detached: true });
    await sendUntilQueued(bed.smtpPort, 'after the restart by the supervisor');
    await sink.waitFor((m) => m.raw.includes(Buffer.from('after the restart by the supervisor')), 20_000);
    process.kill(proc.child.pid!, 'SIGTERM');
    assert.equal(await proc.exited, 0, proc.stderr());
  });
});
