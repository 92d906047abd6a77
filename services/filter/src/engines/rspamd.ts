/**
 * rspamd's normal worker over HTTP: POST /checkv2 with the message as the
 * body and the envelope in request headers (IP, Helo, From, Rcpt, Queue-Id;
 * rspamd's protocol documentation). The answer's score is added to ours
 * (times the RSPAMD_SCORE weight) and each symbol it reports becomes a hit
 * named RSPAMD_<SYMBOL> (score 0: already inside RSPAMD_SCORE; the symbol's
 * own score is in the detail). Non-200 answers and unreadable JSON are
 * failures.
 */
import { Readable } from 'node:stream';
import type { Envelope, RuleHit } from '@sluice/proto';
import type { RuleWeights } from '../authentication.ts';
import type { MessageContent } from '../message-content.ts';
import type { EngineScan, ScanEngine } from './engine.ts';

interface RspamdReply {
  score?: number;
  required_score?: number;
  action?: string;
  symbols?: Record<string, { name?: string; score?: number; description?: string }>;
}

export class RspamdEngine implements ScanEngine {
  readonly name = 'rspamd';
  readonly url: string;
  readonly weights: RuleWeights;
  constructor(url: string, weights: RuleWeights) {
    this.url = url;
    this.weights = weights;
  }

  async scan(content: MessageContent, env: Envelope, signal: AbortSignal): Promise<EngineScan> {
    const headers = new Headers({
      IP: env.client.ip,
      Helo: env.client.helo,
      From: env.mailFrom.address,
      'Queue-Id': env.id,
      Pass: 'all',
    });
    for (const r of env.recipients) headers.append('Rcpt', r.address);
    if (env.client.auth?.user) headers.set('User', env.client.auth.user);
    // A large body is streamed as the request body (duplex half), never held whole.
    const body = content.complete ? content.bytes : Readable.from(await content.open());
    const res = await fetch(new URL('/checkv2', this.url), {
      method: 'POST',
      body: body as unknown as RequestInit['body'],
      headers,
      signal,
      ...(content.complete ? {} : { duplex: 'half' }),
    } as RequestInit);
    const text = await res.text();
    if (res.status !== 200) throw new Error(`rspamd: HTTP ${res.status} ${text.slice(0, 200)}`);
    let reply: RspamdReply;
    try {
      reply = JSON.parse(text) as RspamdReply;
    } catch {
      throw new Error('rspamd: answer is not JSON');
    }
    if (typeof reply.score !== 'number') throw new Error('rspamd: answer has no score');
    const hits: RuleHit[] = [
      {
        name: 'RSPAMD_SCORE',
        score: round((this.weights.RSPAMD_SCORE ?? 1) * reply.score),
        detail: `rspamd score ${reply.score} action ${reply.action ?? '?'}`,
      },
    ];
    for (const [name, sym] of Object.entries(reply.symbols ?? {})) {
      hits.push({
        name: `RSPAMD_${name.replace(/[^A-Za-z0-9_]/g, '_')}`,
        score: 0,
        detail: String(sym.score ?? 0),
      });
    }
    return { hits };
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
