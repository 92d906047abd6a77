/**
 * clamd over TCP with the INSTREAM command (clamd(8)): the body is streamed
 * (streamed: a large body is never held whole) in chunks, each preceded by its length as a 4-byte big-endian integer, and
 * ended by a zero-length chunk; clamd answers "stream: OK",
 * "stream: <name> FOUND" or "... ERROR" (null-terminated with the z prefix).
 * Anything but OK or FOUND is a failure, so an unscanned message is never
 * taken for a clean one.
 */
import { connect } from 'node:net';
import type { Envelope } from '@sluice/proto';
import type { MessageContent } from '../message-content.ts';
import type { EngineScan, ScanEngine } from './engine.ts';

const CHUNK = 64 * 1024;

export interface ClamdOptions {
  host: string;
  port: number;
}

export class ClamdEngine implements ScanEngine {
  readonly name = 'clamd';
  readonly opts: ClamdOptions;
  constructor(opts: ClamdOptions) {
    this.opts = opts;
  }

  scan(content: MessageContent, _env: Envelope, signal: AbortSignal): Promise<EngineScan> {
    return new Promise<EngineScan>((resolve, reject) => {
      const sock = connect({ host: this.opts.host, port: this.opts.port });
      const chunks: Buffer[] = [];
      const fail = (err: Error) => {
        sock.destroy();
        reject(err);
      };
      signal.addEventListener('abort', () => fail(signal.reason as Error), { once: true });
      sock.on('error', fail);
      sock.on('data', (d) => chunks.push(d));
      sock.on('end', () => {
        const answer = Buffer.concat(chunks).toString('utf8').replace(/\0+$/, '').trim();
        sock.end();
        const found = /^stream: (.+) FOUND$/.exec(answer);
        if (found)
          return resolve({ hits: [{ name: 'VIRUS_FOUND', score: 0, detail: found[1] }], virus: found[1] });
        if (answer === 'stream: OK') return resolve({ hits: [] });
        reject(new Error(`clamd: ${answer || 'empty answer'}`));
      });
      sock.on('connect', async () => {
        try {
          await write(sock, Buffer.from('zINSTREAM\0'));
          for await (const chunk of await content.open()) {
            for (let off = 0; off < chunk.length; off += CHUNK) {
              if (signal.aborted) return;
              const part = chunk.subarray(off, Math.min(off + CHUNK, chunk.length));
              const len = Buffer.alloc(4);
              len.writeUInt32BE(part.length);
              await write(sock, len);
              await write(sock, part);
            }
          }
          await write(sock, Buffer.alloc(4)); // the zero-length chunk ends the stream
        } catch (err) {
          fail(err as Error);
        }
      });
    });
  }
}

/** Write with backpressure: wait for 'drain' when the socket buffer is full. */
function write(sock: import('node:net').Socket, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sock.destroyed) return reject(new Error('clamd: connection closed'));
    const ok = sock.write(data, (err) => (err ? reject(err) : undefined));
    if (ok) resolve();
    else sock.once('drain', resolve);
  });
}
