/**
 * When to try a deferred part again, and when to give up. The schedule
 * (config egress.retrySchedule, seconds) is indexed by the attempt that just
 * failed: after attempt n the delay is schedule[n-1], the last value
 * repeating. A message older than bus.queueLifetime (measured from
 * receivedAt, when we accepted it) is not retried: its deferred recipients
 * fail as expired (RFC 5321 §4.5.4.1 suggests giving up after 4-5 days).
 */
export function retryDelayMs(scheduleSeconds: readonly number[], deliveryCount: number): number {
  if (scheduleSeconds.length === 0) throw new RangeError('retry schedule is empty');
  const i = Math.min(Math.max(deliveryCount, 1) - 1, scheduleSeconds.length - 1);
  return Math.round(scheduleSeconds[i]! * 1000);
}

export function isExpired(receivedAt: string, nowMs: number, queueLifetimeSeconds: number): boolean {
  return nowMs - Date.parse(receivedAt) >= queueLifetimeSeconds * 1000;
}

/** "5 days", "3 hours", "40 seconds": for expiry texts. */
export function describeDuration(seconds: number): string {
  const units: Array<[number, string]> = [
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
  ];
  for (const [size, name] of units) {
    if (seconds >= size) {
      const n = Math.round((seconds / size) * 10) / 10;
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} second${seconds === 1 ? '' : 's'}`;
}
