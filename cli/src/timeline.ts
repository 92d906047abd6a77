/**
 * Renders a message's timeline (the events every stage recorded) as text an
 * operator can read at 3 a.m.: one line per decision, in time order, with the
 * offset from the first event so slow stages stand out.
 */
import type { SluiceEvent } from '@sluice/proto';

function describe(e: SluiceEvent): string {
  switch (e.kind) {
    case 'received':
      return `received from ${e.client} (helo ${e.helo}) MAIL FROM:<${e.mailFrom}> to ${e.recipients.join(', ')}, ${e.size} bytes${e.messageId ? `, Message-ID ${e.messageId}` : ''}`;
    case 'verdict':
      return `verdict ${e.action} score ${e.score}${e.spf ? ` spf=${e.spf}` : ''}${e.dkim ? ` dkim=${e.dkim}` : ''}${e.dmarc ? ` dmarc=${e.dmarc}` : ''}${e.rules.length ? ` [${e.rules.join(' ')}]` : ''}`;
    case 'resolved':
      return `resolved ${e.recipient} -> ${e.targets.join(', ') || '(none)'} via ${e.route} (${e.source})`;
    case 'rewritten':
      return `rewritten: ${e.changes.length ? e.changes.join('; ') : 'no changes'}`;
    case 'delivery':
      return `${e.outcome} ${e.recipient}${e.host ? ` at ${e.host}` : ''} attempt ${e.attempt}${e.tls ? ` tls=${e.tls}` : ''}: ${e.reply}${e.nextAttemptAt ? ` (next attempt ${e.nextAttemptAt})` : ''}`;
    case 'dead-lettered':
      return `dead-lettered: ${e.reason}`;
    case 'duplicate':
      return `duplicate of ${e.duplicateOf ?? 'a message already queued (first queue id not found)'}: the resend was not queued again`;
  }
}

export function renderTimeline(events: SluiceEvent[]): string {
  if (events.length === 0)
    return 'no events recorded for this queue id (wrong id, or older than events.retention)';
  const sorted = [...events].sort((a, b) => a.at.localeCompare(b.at));
  const t0 = Date.parse(sorted[0]!.at);
  return sorted
    .map((e) => {
      const offset = `+${((Date.parse(e.at) - t0) / 1000).toFixed(3)}s`.padStart(10);
      const part = e.partId ? ` ${e.partId}` : '';
      return `${e.at} ${offset}  ${e.stage.padEnd(9)}${part}  ${describe(e)}`;
    })
    .join('\n');
}
