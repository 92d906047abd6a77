/**
 * The `sluice` command as an operator uses it: `check-config` names the bad
 * key and the fix; `run` with no NATS URL starts its own nats-server, carries
 * a message to its destination, answers `trace`, and stops cleanly on SIGTERM;
 * the installed command is one process, answers --help at once, and turns
 * usage mistakes and busy ports into one line on stderr.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  freePort,
  type SmtpSink,
  sendMail,
  sluiceCommand,
  startDnsServer,
  startSluiceCommand,
  startSmtpSink,
  waitUntil,
} from '@sluice/test-harness';
import { queueIdFromReply, type SluiceProcess, sluiceBin, startSluiceProcess } from './helpers.ts';

/** An empty DNS server (every name NXDOMAIN: SPF and DMARC none); a dead one would make the filter tempfail. */
let deadEndDns: Awaited<ReturnType<typeof startDnsServer>>;
before(async () => {
  deadEndDns = await startDnsServer([]);
});
after(async () => {
  await deadEndDns?.stop();
});

const root = join(import.meta.dirname, '..', '..');
const node = process.execPath;

function runSluice(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(node, [sluiceBin, ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
}

describe('sluice check-config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the example configuration is valid', () => {
    const r = runSluice(['check-config']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /sluice\.example\.yaml: OK/);
  });

  test('a wrong value and an unknown key fail with the key path and the fix', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      [
        'domains:',
        '  primary: example.org',
        'ingress:',
        '  listen:',
        '    - port: "twenty-five"',
        'ingres: {}',
        '',
      ].join('\n'),
    );
    const r = runSluice(['check-config', file]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /ingress\.listen\[0\]\.port/);
    assert.match(r.stderr, /ingres/);
    assert.match(r.stderr, /did you mean .?ingress/);
  });

  test('lookup without a reachable NATS is one clear line and exit 69', () => {
    const file = join(dir, 'nobody.yaml');
    writeFileSync(file, 'domains: { primary: example.org }\nnats: { servers: ["nats://127.0.0.1:9"] }\n');
    const r = runSluice(['lookup', 'alice@example.org', '--config', file]);
    assert.equal(r.status, 69, r.stderr);
    assert.match(r.stderr, /^sluice: cannot reach NATS at nats:\/\/127\.0\.0\.1:9/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  test('run refuses to start on a bad config, naming the key', () => {
    const file = join(dir, 'bad2.yaml');
    writeFileSync(file, 'domains:\n  primary: "not a domain!"\n');
    const r = runSluice(['run', '--config', file]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /domains\.primary/);
  });
});

describe('sluice run (all services, embedded NATS)', () => {
  let dir: string;
  let sink: SmtpSink;
  let proc: SluiceProcess;
  let smtpPort: number;
  let configFile: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-run-'));
    sink = await startSmtpSink({ port: 0 });
    smtpPort = await freePort();
    const natsPort = await freePort();
    configFile = join(dir, 'sluice.yaml');
    writeFileSync(
      configFile,
      `hostname: mx.example.org
domains:
  primary: example.org
routing:
  forwards:
    alice@example.org: [alice@example.net]
transports:
  example.net: { host: 127.0.0.1, port: ${sink.port} }
nats:
  embedded: { port: ${natsPort}, dataDir: ${join(dir, 'nats')} }
ingress:
  listen: [{ host: 127.0.0.1, port: ${smtpPort} }]
dns: { servers: ["${deadEndDns.address}"], timeout: 1 }
`,
    );
    proc = await startSluiceProcess(['--config', configFile]);
  });

  after(async () => {
    if (proc && proc.child.exitCode === null) proc.child.kill('SIGKILL');
    await sink?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('lookup asks the running resolver; a changed config applies, an invalid one is refused', async () => {
    const original = readFileSync(configFile, 'utf8');
    // The CLI reads its own copy (for the NATS address): the served file is about to be broken.
    const cliConfig = join(dir, 'cli.yaml');
    writeFileSync(cliConfig, original);
    const lookup = (address: string) => {
      const r = runSluice(['lookup', address, '--config', cliConfig, '--json']);
      return { status: r.status, stderr: r.stderr, reply: r.stdout ? JSON.parse(r.stdout) : undefined };
    };
    const alice = await waitUntil('the resolver to answer lookups', () => {
      const r = lookup('alice@example.org');
      return r.status === 0 && r.reply;
    });
    assert.deepEqual(alice.targets, ['alice@example.net']);
    assert.deepEqual(alice.decidedBy, [{ source: 'config routing.forwards' }]);
    const text = runSluice(['lookup', 'alice+news@example.org', '--config', configFile]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /decided by: config routing\.forwards/);
    assert.match(text.stdout, /plus-addressing/);
    assert.equal(lookup('bob@example.org').status, 1);

    // A valid change applies without a restart.
    writeFileSync(
      configFile,
      original.replace(
        'routing:\n',
        'routing:\n  reject:\n    spam@example.org: "No such list"\n  aliases:\n    bob@example.org: [alice@example.org]\n',
      ),
    );
    const bob = await waitUntil('the reloaded routing to answer', () => {
      const r = lookup('bob@example.org');
      return r.status === 0 && r.reply;
    });
    assert.deepEqual(bob.targets, ['alice@example.net']);
    const spam = lookup('spam@example.org');
    assert.equal(spam.reply.rejectText, 'No such list');
    // An invalid file is refused with the reason; the table in use keeps serving.
    writeFileSync(
      configFile,
      original.replace('routing:\n', 'routing:\n  aliases:\n    bob@example.org: "not a list"\n'),
    );
    await waitUntil('the refusal to be logged', () => /changed config refused/.test(proc.stdout()));
    assert.match(proc.stdout(), /routing\.aliases/);
    const still = lookup('bob@example.org');
    assert.equal(still.status, 0, still.stderr);
    writeFileSync(configFile, original);
    await waitUntil('the original routing back', () => lookup('bob@example.org').status === 1);
  });

  test('delivers a forward, traces it, and shuts down gracefully on SIGTERM', async () => {
    const reply = await sendMail({
      port: smtpPort,
      from: 'someone@sender.test',
      to: ['alice@example.org'],
      raw: Buffer.from(
        'From: someone@sender.test\r\nTo: alice@example.org\r\nSubject: via sluice run\r\n\r\nhi\r\n',
      ),
    });
    const queueId = queueIdFromReply(reply.response);
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from('via sluice run')), 20_000);
    assert.deepEqual(got.rcptTo, ['alice@example.net']);

    // Every log line is JSON with the instance, at most one `service` key, and a trace id
    // on the lines written while handling the message.
    const lines = proc.stdout().split('\n').filter(Boolean);
    for (const line of lines) {
      const rec = JSON.parse(line) as Record<string, unknown>;
      assert.ok(rec.instance, line);
      assert.ok((line.match(/"service":/g) ?? []).length <= 1, `duplicate service key: ${line}`);
    }
    const aboutMessage = lines.filter((l) => l.includes(queueId));
    assert.ok(aboutMessage.length >= 3, `log lines about ${queueId}`);
    for (const line of aboutMessage) assert.match(line, /"trace_id":"[0-9a-f]{32}"/, line);

    // `sluice trace` is a process of its own: each probe runs it once more.
    let last: ReturnType<typeof runSluice> | undefined;
    const trace = await waitUntil(
      () => `the trace to show the delivery:\n${last?.stdout}\n${last?.stderr}`,
      () => {
        last = runSluice(['trace', queueId, '--config', configFile]);
        return /delivered alice@example\.net/.test(last.stdout) && last.stdout;
      },
      { timeoutMs: 10_000 },
    );
    assert.match(trace, /ingress\s+received from/);
    assert.match(trace, /delivered alice@example\.net/);

    proc.child.kill('SIGTERM');
    const code = await proc.exited;
    assert.equal(code, 0, proc.stderr());
    assert.match(proc.stdout(), /graceful shutdown requested/);
  });
});

describe('sluice run after a crash, and as the installed command', () => {
  let dir: string;
  let configFile: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-orphan-'));
    configFile = join(dir, 'sluice.yaml');
    writeFileSync(
      configFile,
      `domains: { primary: example.org }
nats: { embedded: { port: ${await freePort()}, dataDir: ${join(dir, 'nats')} } }
ingress: { listen: [{ host: 127.0.0.1, port: ${await freePort()} }] }
`,
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Pids of live nats-servers using this test's data dir (read from /proc: no procps needed). */
  const natsServersOf = () =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
          return cmd.includes('nats-server') && cmd.includes(join(dir, 'nats'));
        } catch {
          return false; // the process ended while we looked
        }
      });

  test('an embedded nats-server orphaned by SIGKILL is stopped and replaced at the next start', async () => {
    const first = await startSluiceProcess(['--config', configFile]);
    // cli/bin/sluice.js, started without the V8 options, replaced itself (same pid) with a Node that has them.
    const cmdline = readFileSync(`/proc/${first.child.pid}/cmdline`, 'utf8').split('\0');
    for (const option of readFileSync(new URL('../../cli/bin/node-options', import.meta.url), 'utf8').split(
      /\s+/,
    ))
      if (option) assert.ok(cmdline.includes(option), `${option} in ${cmdline.join(' ')}`);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.equal(natsServersOf().length, 1, 'the killed sluice left its nats-server behind');
    const second = await startSluiceProcess(['--config', configFile]);
    assert.match(second.stdout(), /stopped a nats-server left running on this data dir/);
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0, second.stderr());
    assert.deepEqual(natsServersOf(), [], 'no nats-server left after a graceful stop');
  });

  test('the sluice command is one process: SIGTERM stops it gracefully, kill -9 leaves no sluice behind', async () => {
    // cli/bin/sluice is a sh script that execs Node 24: the pid we started is Sluice itself.
    const first = await startSluiceCommand(['--config', configFile]);
    const cmdline = readFileSync(`/proc/${first.child.pid}/cmdline`, 'utf8').split('\0');
    assert.match(cmdline[0]!, /node_modules\/node\/bin\/node$/);
    // Node options first (cli/bin/node-options), then the program.
    const options = readFileSync(new URL('../../cli/bin/node-options', import.meta.url), 'utf8').split(/\s+/);
    assert.deepEqual(cmdline.slice(1, 1 + options.filter(Boolean).length), options.filter(Boolean));
    assert.match(cmdline.find((a) => !a.startsWith('-') && a !== cmdline[0])!, /cli\/src\/main\.ts$/);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.deepEqual(sluiceProcessesOf(configFile), [], 'no sluice process outlives kill -9');

    const second = await startSluiceCommand(['--config', configFile]);
    assert.match(second.stdout(), /stopped a nats-server left running on this data dir/);
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0, second.stderr());
    assert.match(second.stdout(), /graceful shutdown requested/);
    assert.deepEqual(natsServersOf(), []);
  });
});

/** Pids of live processes running `sluice ... CONFIG` (read from /proc). */
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

describe('the sluice command line', () => {
  const run = (args: string[], cwd = root) => spawnSync(sluiceCommand, args, { cwd, encoding: 'utf8' });

  test('--help answers in under a second, without loading the services', () => {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = run(['--help']);
      times.push(performance.now() - t0);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^usage:/);
    }
    const best = Math.min(...times);
    assert.ok(best < 1000, `sluice --help took ${times.map(Math.round).join(', ')} ms`);
  });

  test('every command has --help and -h', () => {
    for (const cmd of ['run', 'check-config', 'trace', 'lookup', 'ldap', 'sink']) {
      for (const flag of ['--help', '-h']) {
        const r = run([cmd, flag]);
        assert.equal(r.status, 0, `${cmd} ${flag}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^usage: sluice ${cmd}`));
      }
    }
    const r = run(['help', 'trace']);
    assert.match(r.stdout, /^usage: sluice trace/);
  });

  /** One line on stderr, no stack trace, a non-zero exit. */
  function assertOneLineError(r: ReturnType<typeof run>, pattern: RegExp, code: number) {
    assert.equal(r.status, code, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }

  test('an unknown command or option is one clear line and exit 2', () => {
    assertOneLineError(run(['frobnicate']), /^sluice: unknown command 'frobnicate'/, 2);
    assertOneLineError(
      run(['run', '--no-such-option']),
      /^sluice: run: Unknown option '--no-such-option'/,
      2,
    );
    assertOneLineError(run(['sink', '--port']), /^sluice: sink: Option '--port <value>' argument missing/, 2);
  });

  test('a busy MX port or NATS port is one clear line and exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-busy-'));
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const busy = (taken.address() as AddressInfo).port;
    try {
      const config = (nats: number, mx: number) => {
        const file = join(dir, `c-${nats}-${mx}.yaml`);
        writeFileSync(
          file,
          `domains: { primary: example.org }
nats: { embedded: { port: ${nats}, dataDir: ${join(dir, 'nats')} } }
ingress: { listen: [{ host: 127.0.0.1, port: ${mx} }] }
`,
        );
        return file;
      };
      const mx = run(['run', '--config', config(await freePort(), busy)]);
      assertOneLineError(mx, new RegExp(`ingress cannot listen on 127\\.0\\.0\\.1:${busy}.*in use`), 1);
      const nats = run(['run', '--config', config(busy, await freePort())]);
      assertOneLineError(
        nats,
        new RegExp(`nats-server cannot listen on 127\\.0\\.0\\.1:${busy}: address already in use`),
        1,
      );
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
