/**
 * `sluice sink`: a development SMTP sink. It accepts every message, prints one
 * line per message (sender, recipients, size, subject) and, with --dir, writes
 * each raw message to an .eml file. It is the "outside world" of the README
 * tour: the example configuration routes example.net to it on 127.0.0.1:2526.
 * Not for production: it accepts anything from anyone.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';

export interface SinkMessage {
  mailFrom: string;
  rcptTo: string[];
  size: number;
  sha256: string;
  subject: string;
  file?: string;
}

export interface DevSink {
  port: number;
  stop(): Promise<void>;
}

function subjectOf(raw: Buffer): string {
  const head = raw.subarray(0, Math.min(raw.length, 64 * 1024)).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const m = /^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(end >= 0 ? head.slice(0, end) : head);
  return m ? m[1]!.replace(/\r?\n[ \t]+/g, ' ').trim() : '';
}

export async function startDevSink(opts: {
  host: string;
  port: number;
  dir?: string;
  onMessage: (m: SinkMessage) => void;
}): Promise<DevSink> {
  if (opts.dir) mkdirSync(opts.dir, { recursive: true });
  let n = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH'],
    hideSTARTTLS: true,
    banner: 'sluice dev sink',
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const msg: SinkMessage = {
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          size: raw.length,
          sha256: createHash('sha256').update(raw).digest('hex'),
          subject: subjectOf(raw),
        };
        if (opts.dir) {
          msg.file = join(opts.dir, `${Date.now()}-${++n}.eml`);
          writeFileSync(msg.file, raw);
        }
        opts.onMessage(msg);
        callback(null, 'Ok: stored by sluice dev sink');
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return { port, stop: () => new Promise<void>((r) => server.close(() => r())) };
}
