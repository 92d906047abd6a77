/**
 * Debian's postsrsd (1.x) as an independent judge of our SRS: started on
 * loopback with free ports and a secrets file in a temp dir, driven through
 * its Postfix tcp_table protocol ("get <url-encoded address>\n" answered by
 * "200 <address>", "500 <reason>" or "400 <reason>"). One connection per
 * query keeps the client trivial.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { waitUntil } from './wait-until.ts';

export const POSTSRSD_BIN = '/usr/sbin/postsrsd';

export interface PostsrsdAnswer {
  /** 200 (rewritten or unchanged), 400 (temporary) or 500 (refused). */
  code: number;
  text: string;
}

export interface Postsrsd {
  forward(address: string): Promise<PostsrsdAnswer>;
  reverse(address: string): Promise<PostsrsdAnswer>;
  stop(): Promise<void>;
}

function query(port: number, address: string): Promise<PostsrsdAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`get ${encodeURIComponent(address)}\n`));
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      socket.end();
      const line = buf.slice(0, nl);
      const code = Number(line.slice(0, 3));
      resolve({ code, text: decodeURIComponent(line.slice(4)) });
    });
    socket.on('error', reject);
  });
}

/** Start postsrsd for `domain` with `secrets` (the first signs). */
export async function startPostsrsd(opts: {
  domain: string;
  secrets: readonly string[];
  separator?: string;
}): Promise<Postsrsd> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-postsrsd-'));
  const secretFile = join(dir, 'secrets');
  writeFileSync(secretFile, `${opts.secrets.join('\n')}\n`);
  const forwardPort = await freePort();
  const reversePort = await freePort();
  const args = [`-s${secretFile}`, `-d${opts.domain}`, '-l127.0.0.1', `-f${forwardPort}`, `-r${reversePort}`];
  if (opts.separator) args.push(`-a${opts.separator}`);
  const child: ChildProcess = spawn(POSTSRSD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d.toString();
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  await waitUntil(
    () => `postsrsd to listen on ${forwardPort} (stderr: ${stderr})`,
    async () => {
      if (exited) throw new Error(`postsrsd exited: ${stderr}`);
      return (await query(forwardPort, 'probe@example.net')).code === 200;
    },
  );
  return {
    forward: (a) => query(forwardPort, a),
    reverse: (a) => query(reversePort, a),
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
