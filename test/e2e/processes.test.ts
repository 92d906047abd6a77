/**
 * `processes: 2` (libs/runtime worker-processes.ts, decision 0047) as an
 * operator runs it: the installed `sluice run` starts a worker, both share the
 * embedded nats-server and the SMTP port (SO_REUSEPORT), both take sessions,
 * every message is delivered once; a worker killed with -9 is started again
 * and mail keeps flowing; SIGTERM stops the worker, then the primary, then
 * the nats-server, and leaves no process behind.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  freePort,
  type SluiceProcess,
  type SmtpSink,
  sendMail,
  startDnsServer,
  startSluiceCommand,
  startSmtpSink,
  waitUntil,
} from '@sluice/test-harness';

let dir: string;
let sink: SmtpSink;
let dns: Awaited<ReturnType<typeof startDnsServer>>;
let proc: SluiceProcess;
let smtpPort: number;
let httpPort: number;
let configFile: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-processes-'));
  sink = await startSmtpSink({ port: 0 });
  dns = await startDnsServer([]);
  smtpPort = await freePort();
  httpPort = await freePort();
  const natsPort = await freePort();
  configFile = join(dir, 'sluice.yaml');
  writeFileSync(
    configFile,
    `hostname: mx.example.org
processes: 2
domains: { primary: example.org }
routing:
  forwards:
    alice@example.org: [alice@example.net]
transports:
  example.net: { host: 127.0.0.1, port: ${sink.port} }
nats:
  embedded: { port: ${natsPort}, dataDir: ${join(dir, 'nats')} }
ingress:
  listen: [{ host: 127.0.0.1, port: ${smtpPort} }]
  greetDelay: 0
  trustedNetworks: [127.0.0.0/8]
http: { listen: { host: 127.0.0.1, port: ${httpPort} } }
dns: { servers: ["${dns.address}"], timeout: 1 }
`,
  );
  proc = await startSluiceCommand(['--config', configFile]);
});

after(async () => {
  if (proc && proc.child.exitCode === null) proc.child.kill('SIGKILL');
  for (const pid of sluiceProcessesOf(configFile)) process.kill(Number(pid), 'SIGKILL');
  await Promise.all([sink?.stop(), dns?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

interface LogLine {
  msg?: string;
  instance?: string;
  worker?: number;
  pid?: number;
  queueId?: string;
}

const logLines = (): LogLine[] =>
  proc
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

/** Pids of live processes running `sluice ... CONFIG` (from /proc). */
function sluiceProcessesOf(config: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
        return cmd.includes('main.ts') && cmd.includes(config);
      } catch {
        return false;
      }
    });
}

const natsServersOf = () =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
        return cmd.includes('nats-server') && cmd.includes(join(dir, 'nats'));
      } catch {
        return false;
      }
    });

async function sendBatch(tag: string, n: number): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      sendMail({
        port: smtpPort,
        from: 'someone@sender.test',
        to: ['alice@example.org'],
        raw: Buffer.from(
          `From: someone@sender.test\r\nTo: alice@example.org\r\nSubject: ${tag} ${i}\r\nMessage-ID: <${tag}-${i}@sender.test>\r\n\r\nhi\r\n`,
        ),
      }),
    ),
  );
  await waitUntil(`the ${n} "${tag}" messages at the sink`, () => {
    const got = sink.messages.filter((m) => m.raw.includes(Buffer.from(`Subject: ${tag} `)));
    return got.length >= n && got;
  });
}

test('two processes share the port and the NATS; both take sessions; each message is delivered once', async () => {
  await waitUntil(
    'the worker to run',
    () => logLines().filter((l) => l.msg === 'sluice is running').length === 2,
  );
  const instances = new Set(
    logLines()
      .filter((l) => l.msg === 'sluice is running')
      .map((l) => l.instance),
  );
  assert.equal(instances.size, 2, 'two instances');
  assert.equal(sluiceProcessesOf(configFile).length, 2);
  assert.equal(natsServersOf().length, 1, 'one nats-server, the primary one');

  await sendBatch('spread', 40);
  const accepted = logLines().filter((l) => l.msg === 'accepted');
  const byInstance = new Set(accepted.map((l) => l.instance));
  assert.equal(byInstance.size, 2, `both processes accepted sessions: ${[...byInstance].join(', ')}`);
  const delivered = sink.messages.filter((m) => m.raw.includes(Buffer.from('Subject: spread ')));
  assert.equal(delivered.length, 40, 'each message delivered once');

  // Each process has its own HTTP endpoint: the worker's on the next port.
  for (const port of [httpPort, httpPort + 1]) {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(res.status, 200, `healthz on ${port}`);
  }
});

test('a worker killed with -9 is started again, and mail keeps flowing', async () => {
  const started = logLines().filter((l) => l.msg === 'worker process started');
  const workerPid = started.at(-1)!.pid!;
  process.kill(workerPid, 'SIGKILL');
  await waitUntil('the primary to restart the worker', () =>
    logLines().some((l) => l.msg === 'worker process started' && l.pid !== workerPid),
  );
  assert.ok(logLines().some((l) => l.msg === 'worker process exited: restarting'));
  await sendBatch('after restart', 10);
});

test('SIGTERM stops the worker, then the primary, then the nats-server; nothing is left', async () => {
  proc.child.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.stderr());
  const msgs = logLines().map((l) => l.msg);
  assert.ok(msgs.includes('worker process stopped'), 'the worker stopped first');
  assert.ok(
    msgs.lastIndexOf('worker process stopped') < msgs.lastIndexOf('stopping: draining services'),
    'the primary drained after its worker',
  );
  await waitUntil('no sluice process left', () => sluiceProcessesOf(configFile).length === 0);
  assert.deepEqual(natsServersOf(), []);
});
