/**
 * ARC sealing (RFC 8617) of a message we forward: ARC-Authentication-Results
 * (§4.1.1) from the filter's Authentication-Results, ARC-Message-Signature
 * (§4.1.2) and ARC-Seal (§4.1.3) with our key, instance i = one more than
 * the chain already on the message. The chain from earlier hops was
 * validated by the filter at receipt (envelope.auth.arc), which gives cv=
 * (§5.1.1): pass, fail or none. mailauth builds the set (its sealMessage);
 * it refuses to extend a chain whose newest seal already says cv=fail or
 * that has 50 sets (§5.1, §4.2.1), and we then forward unsealed.
 */
import { createSeal } from 'mailauth/lib/arc/index.js';
import type { DkimKey } from './keys.ts';
import { splitMessage } from './message-headers.ts';

export interface ArcSealInput {
  key: Pick<DkimKey, 'domain' | 'selector' | 'key'>;
  /** The authres payload of our Authentication-Results (after the header name). */
  authResults: string;
  /** RFC 8617 §4.1.3 cv= of the chain as received. */
  cv: 'none' | 'pass' | 'fail';
  now?: Date;
}

export type ArcSealResult =
  | { ok: true; headers: Array<{ name: string; value: string }> }
  | { ok: false; reason: string };

export async function arcSeal(message: Uint8Array, input: ArcSealInput): Promise<ArcSealResult> {
  const { headers, errors } = await createSeal(Buffer.from(message), {
    seal: {
      signingDomain: input.key.domain,
      selector: input.key.selector,
      privateKey: input.key.key.export({ type: 'pkcs8', format: 'pem' }) as string,
      authResults: input.authResults,
      cv: input.cv,
      signTime: input.now ?? new Date(),
    },
  } as Parameters<typeof createSeal>[1]);
  if (headers.length === 0) {
    const why = errors.map((e) => e.err?.message ?? String(e)).join('; ');
    return { ok: false, reason: why || 'mailauth created no ARC set' };
  }
  const parsed = splitMessage(Buffer.from(`${headers.join('\r\n').replace(/\r\n$/, '')}\r\n\r\n`)).headers;
  return {
    ok: true,
    headers: parsed.map((f) => {
      const colon = f.raw.indexOf(':');
      return { name: f.raw.slice(0, colon), value: f.raw.slice(colon + 1).replace(/^[ \t]+/, '') };
    }),
  };
}
