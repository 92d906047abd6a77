/**
 * From the rule hits and the checks to one action (docs/filter.md, in this
 * order, first match wins):
 *
 *   1. a virus found                              -> reject  550 5.7.1
 *   2. a DNS temperror in SPF/DKIM/DMARC that left
 *      DMARC unproven (MX door)                   -> tempfail 451 (never pass, never fail)
 *   3. From: our domain, unauthenticated, with
 *      antiSpoofing.action "reject"               -> reject  550 5.7.1
 *   4. score >= actions.reject                    -> reject  550 5.7.1
 *   5. an engine failed with onFailure "tempfail" -> tempfail 451
 *   6. score >= actions.greylist, greylisting on,
 *      the triplet not yet passed                 -> greylist 451 4.7.1
 *   7. score >= actions.tag                       -> tag (X-Spam-Status: Yes)
 *   8. otherwise                                  -> accept
 *
 * Accepted and tagged messages get X-Spam-Score and X-Spam-Status with the
 * rule hits, so users and sieve rules can sort on them.
 */
import type { PrependHeader, RuleHit, Verdict } from '@sluice/proto';
import { headerField } from '@sluice/smtp';

export interface Thresholds {
  reject: number;
  greylist: number;
  tag: number;
}

export interface ActionInput {
  hits: RuleHit[];
  thresholds: Thresholds;
  virus?: string;
  temperror: boolean;
  spoofReject: boolean;
  engineTempfail?: string;
  /** Asked only when the score reaches the greylist threshold; null when greylisting is off. */
  greylist: (() => Promise<'greylist' | 'pass'>) | null;
}

export function totalScore(hits: readonly RuleHit[]): number {
  return Math.round(hits.reduce((s, h) => s + h.score, 0) * 100) / 100;
}

export async function chooseAction(input: ActionInput): Promise<Verdict> {
  const score = totalScore(input.hits);
  const v = (action: Verdict['action'], reason?: string): Verdict => ({
    action,
    score,
    rules: input.hits,
    ...(reason ? { reason } : {}),
  });
  const t = input.thresholds;
  if (input.virus) return v('reject', 'Virus found');
  if (input.temperror) return v('tempfail', 'Sender authentication temporarily unavailable (DNS)');
  if (input.spoofReject) return v('reject', 'Sender domain is ours but the message is not authenticated');
  if (score >= t.reject) return v('reject', 'Message looks like spam');
  if (input.engineTempfail) return v('tempfail', 'Content scanner temporarily unavailable');
  if (score >= t.greylist && input.greylist && (await input.greylist()) === 'greylist') {
    return v('greylist', 'Greylisted, please try again later');
  }
  return v(score >= t.tag ? 'tag' : 'accept');
}

/** X-Spam-Score and X-Spam-Status (SpamAssassin's layout: "Yes, score=7.5 required=4 tests=A,B"). */
export function spamHeaders(verdict: Verdict, tagAt: number): PrependHeader[] {
  const names = [
    ...new Set(verdict.rules.filter((r) => r.score !== 0).map((r) => r.name.replace(/[^A-Za-z0-9_]/g, '_'))),
  ];
  const lines: string[] = [];
  let line = '';
  for (const n of names) {
    if (line.length + n.length > 60) {
      lines.push(line);
      line = '';
    }
    line += (line ? ',' : '') + n;
  }
  if (line) lines.push(line);
  const yes = verdict.action === 'tag' || verdict.score >= tagAt ? 'Yes' : 'No';
  const status = `${yes}, score=${verdict.score} required=${tagAt}${lines.length ? ` tests=${lines.join(',\r\n\t')}` : ' tests=none'}`;
  return [
    headerField('X-Spam-Score', String(verdict.score), 'filter'),
    headerField('X-Spam-Status', status, 'filter'),
  ];
}
