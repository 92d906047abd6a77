/**
 * The Postfix side of the comparison: a throwaway Postfix instance (own
 * config, queue and data directories; test/harness postfix.ts starts and
 * stops it) configured by postfix-config.ts, with postsrsd and/or OpenDKIM
 * beside it for the SRS and DKIM variants. stop() stops those daemons and
 * Postfix and removes the directory.
 *
 * `pids()` are the roots whose process trees are the system under test: the
 * Postfix master (its children, and the CPU of children it reaped) and the
 * postsrsd and opendkim daemons.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  type PostfixInstance,
  portOpen,
  startPostfixInstance,
  waitUntil,
} from '@sluice/test-harness';
import {
  mxMainCfLines,
  opendkimConf,
  opendkimKeyTable,
  opendkimSigningTable,
  transportMap,
  virtualMap,
} from './postfix-config.ts';
import { descendantsOf } from './proc-usage.ts';

export type PostfixVariant = 'plain' | 'srs' | 'dkim' | 'srs+dkim';

export interface PostfixSide {
  variant: PostfixVariant;
  smtpPort: number;
  dir: string;
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * Where both systems keep their queues: on disk (not tmpfs, so Postfix's and
 * JetStream's fsyncs cost what they cost), in a directory that is not world
 * writable: OpenDKIM refuses a key below one (RequireSafeKeys), and /tmp is.
 */
export function benchDataRoot(): string {
  const root = '/var/lib/sluice-bench';
  mkdirSync(root, { recursive: true, mode: 0o755 });
  chmodSync(root, 0o755);
  return root;
}

function uid(name: string): number {
  return Number(execFileSync('id', ['-u', name]).toString().trim());
}

function gid(name: string): number {
  return Number(execFileSync('id', ['-g', name]).toString().trim());
}

/** A daemon we spawned; stop() kills it and what it forked (postsrsd forks per connection). */
function daemon(child: ChildProcess) {
  return {
    pid: () => child.pid,
    stop: () => {
      for (const pid of child.pid ? descendantsOf(child.pid) : []) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
      child.kill('SIGKILL');
    },
  };
}

export async function startPostfix(opts: {
  variant: PostfixVariant;
  sinkPort: number;
  recipients: number;
  /** main.cf lines after the MX's own (later lines win), e.g. process and client limits. */
  extraMainCf?: string[];
}): Promise<PostfixSide> {
  if (userInfo().uid !== 0) throw new Error('the Postfix side runs as root (postfix start, its own queue)');
  const dir = mkdtempSync(join(benchDataRoot(), 'postfix-'));
  chmodSync(dir, 0o755); // postfix's and opendkim's users read the maps and keys below it
  const smtpPort = await freePort();
  const srs = opts.variant.includes('srs')
    ? { forwardPort: await freePort(), reversePort: await freePort() }
    : undefined;
  const dkimMilterPort = opts.variant.includes('dkim') ? await freePort() : undefined;
  const o = { dir, smtpPort, sinkPort: opts.sinkPort, recipients: opts.recipients, srs, dkimMilterPort };

  const daemons: Array<{ pid: () => number | undefined; stop: () => void }> = [];
  let postfix: PostfixInstance;
  const cleanup = () => {
    for (const d of daemons) d.stop();
  };

  try {
    if (srs) {
      const secret = join(dir, 'postsrsd.secret');
      writeFileSync(
        secret,
        `${Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString('base64')}\n`,
        {
          mode: 0o600,
        },
      );
      // postsrsd 1.x: -d our domain, -s the secret, -f/-r the forward/reverse lookup ports.
      const child = spawn(
        'postsrsd',
        [
          `-s${secret}`,
          `-d${'in.test'}`,
          '-l127.0.0.1',
          `-f${srs.forwardPort}`,
          `-r${srs.reversePort}`,
          '-unobody',
          '-4',
        ],
        { stdio: 'ignore' },
      );
      daemons.push(daemon(child));
      await waitUntil('postsrsd listening', () => portOpen(srs.forwardPort), { timeoutMs: 10_000 });
    }
    if (dkimMilterPort) {
      const selector = 'bench';
      execFileSync('opendkim-genkey', ['-b', '2048', '-d', 'in.test', '-s', selector, '-D', dir]);
      const keyFile = join(dir, `${selector}.private`);
      chownSync(keyFile, uid('opendkim'), gid('opendkim'));
      chmodSync(keyFile, 0o600);
      writeFileSync(join(dir, 'dkim-keytable'), opendkimKeyTable({ selector, keyFile }));
      writeFileSync(join(dir, 'dkim-signingtable'), opendkimSigningTable(selector));
      writeFileSync(join(dir, 'opendkim.conf'), opendkimConf({ dir, port: dkimMilterPort }));
      // -f: in the foreground, so it is our child and its pid is known.
      const child = spawn('opendkim', ['-f', '-x', join(dir, 'opendkim.conf')], { stdio: 'ignore' });
      daemons.push(daemon(child));
      await waitUntil('opendkim listening', () => portOpen(dkimMilterPort), { timeoutMs: 10_000 });
    }
    postfix = await startPostfixInstance({
      dir,
      smtpPort,
      mainCf: () => [...mxMainCfLines(o), ...(opts.extraMainCf ?? [])],
      files: { virtual: virtualMap(opts.recipients), transport: transportMap(opts.sinkPort) },
    });
  } catch (err) {
    cleanup();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const instance = postfix;
  return {
    variant: opts.variant,
    smtpPort,
    dir,
    pids: () =>
      [instance.masterPid(), ...daemons.map((d) => d.pid())].filter((p): p is number => p !== undefined),
    async stop() {
      cleanup();
      await instance.stop();
    },
  };
}
