/**
 * Header and MIME sanity rules: what a well-formed message has and what a
 * careless or hostile sender leaves out or breaks. Each returns named hits
 * scored by config filter.weights (docs/filter.md).
 *
 *   HDR_MISSING_DATE        RFC 5322 §3.6: Date is required
 *   HDR_MISSING_MESSAGE_ID  RFC 5322 §3.6.4: Message-ID should be present
 *   HDR_MULTIPLE_FROM       RFC 5322 §3.6: at most one From
 *   HDR_NUL                 RFC 5322 §2.1 / RFC 5321 §4.5.2: no NUL in a message
 *   HDR_LINE_TOO_LONG       RFC 5322 §2.1.1: lines are at most 998 characters
 *   MIME_MALFORMED          RFC 2046 §5.1.1: multipart needs a boundary that
 *                           delimits the parts and a close delimiter
 */
import type { RuleHit } from '@sluice/proto';
import type { RuleWeights } from '../authentication.ts';
import { type HeaderFieldView, headerBlockLength } from '../header-block.ts';

const MAX_LINE = 998;

/** `complete` false: `body` is a large message's header section only (no MIME structure check). */
export function headerSanityHits(
  body: Uint8Array,
  fields: HeaderFieldView[],
  weights: RuleWeights,
  complete = true,
): RuleHit[] {
  const hits: RuleHit[] = [];
  const hit = (name: string, detail?: string) => hits.push({ name, score: weights[name] ?? 0, detail });
  const count = (n: string) => fields.filter((f) => f.name === n).length;

  if (count('date') === 0) hit('HDR_MISSING_DATE');
  if (count('message-id') === 0) hit('HDR_MISSING_MESSAGE_ID');
  if (count('from') > 1) hit('HDR_MULTIPLE_FROM', `${count('from')} From fields`);
  if (body.indexOf(0) >= 0) hit('HDR_NUL');
  const long = longestLine(body);
  if (long > MAX_LINE) hit('HDR_LINE_TOO_LONG', `${long} characters`);
  const mime = complete ? mimeProblem(body, fields) : null;
  if (mime) hit('MIME_MALFORMED', mime);
  return hits;
}

function longestLine(body: Uint8Array): number {
  let max = 0;
  let start = 0;
  for (;;) {
    const lf = body.indexOf(0x0a, start);
    const end = lf < 0 ? body.length : lf;
    const len = end - start - (end > start && body[end - 1] === 0x0d ? 1 : 0);
    if (len > max) max = len;
    if (lf < 0) return max;
    start = lf + 1;
  }
}

/** What is wrong with the top-level MIME structure, or null. */
export function mimeProblem(body: Uint8Array, fields: HeaderFieldView[]): string | null {
  const types = fields.filter((f) => f.name === 'content-type');
  if (types.length > 1) return 'several Content-Type fields';
  const ct = types[0]?.value;
  if (!ct || !/^\s*multipart\//i.test(ct)) return null;
  const m = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))/i.exec(ct);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) return 'multipart without a boundary';
  if (boundary.length > 70) return 'boundary longer than 70 characters';
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString(
    'latin1',
    headerBlockLength(body),
  );
  const delimiter = `\n--${boundary}`;
  if (!text.includes(delimiter)) return 'boundary never occurs';
  if (!text.includes(`${delimiter}--`)) return 'multipart never closed';
  return null;
}
