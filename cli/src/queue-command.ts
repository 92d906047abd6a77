/**
 * `sluice queue ...`: see and act on the egress delivery queue (the parts
 * waiting for a next attempt, per destination), by asking one running egress
 * replica over NATS (services/egress/src/queue-control.ts; docs/egress-queue.md).
 *
 *   sluice queue list [--destination D] [--json]
 *   sluice queue retry|hold|release|delete|bounce ID | --destination D
 *
 * ID is a part id or a queue id (every waiting part of that message). Exit
 * status: 0 done, 1 nothing matched or some parts could not be acted on,
 * 2 usage, 69 no egress answered.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '@sluice/config';
import {
  type QueueAction,
  type QueueControlReply,
  type QueueControlRequest,
  queueActions,
  queueControlReplySchema,
  subjects,
} from '@sluice/proto';
import { loadProcessConfig } from '@sluice/runtime';
import { askResolver as askService, NoResolverError as NoServiceError } from './resolver-rpc.ts';
import { type CommandIo, stdio } from './srs-command.ts';

export const QUEUE_USAGE = `usage: sluice queue list|retry|hold|release|delete|bounce [ID | --destination D] [--config FILE]
  sluice queue list [--destination D] [--json]     waiting parts per destination (asks a running egress)
  sluice queue retry ID | --destination D          attempt now, skipping the wait (and a destination's backoff)
  sluice queue hold ID | --destination D           no attempts until released
  sluice queue release ID | --destination D        end a hold and attempt now
  sluice queue delete ID | --destination D         drop the remaining recipients, no DSN
  sluice queue bounce ID | --destination D         fail the remaining recipients now, DSN to the sender
ID: a part id or a queue id. D: a recipient domain ('gmail.com') or a transport ('[host]:port').
  -c, --config FILE  configuration file (else $SLUICE_CONFIG, else the example)
Exit 0 done, 1 nothing matched or not all done, 2 usage, 69 no egress answered.`;

const REQUEST_TIMEOUT_MS = 15_000;

export async function runQueueCommand(argv: string[], io: CommandIo = stdio): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        destination: { type: 'string', short: 'd' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  try {
    parsed = parse();
  } catch (err) {
    io.err((err as Error).message);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(QUEUE_USAGE);
    return 0;
  }
  const [op, id, ...extra] = positionals;
  let request: QueueControlRequest;
  if (op === 'list' && id === undefined) {
    request = { v: 1, op: 'list', destination: values.destination };
  } else if (
    queueActions.includes(op as QueueAction) &&
    extra.length === 0 &&
    (id === undefined) !== (values.destination === undefined)
  ) {
    request = { v: 1, op: op as QueueAction, id, destination: values.destination };
  } else {
    io.err(QUEUE_USAGE);
    return 2;
  }
  let reply: QueueControlReply;
  try {
    const pc = loadProcessConfig(values.config);
    const raw = await askService(pc, subjects.egressQueueControl, request, REQUEST_TIMEOUT_MS, 'egress');
    reply = queueControlReplySchema.parse(raw);
  } catch (err) {
    io.err((err as Error).message);
    if (err instanceof ConfigError) return 2;
    return err instanceof NoServiceError ? 69 : 1;
  }
  if (reply.error) {
    io.err(reply.error);
    return 1;
  }
  if (values.json) io.out(JSON.stringify(reply, null, 2));
  else for (const line of renderQueueReply(reply)) io.out(line);
  if (request.op === 'list') return 0;
  return (reply.failed ?? []).length === 0 && (reply.done ?? []).length > 0 ? 0 : 1;
}

export function renderQueueReply(r: QueueControlReply): string[] {
  const lines: string[] = [];
  if (r.destinations) {
    if (r.destinations.length === 0) lines.push('the delivery queue is empty');
    for (const d of r.destinations) {
      const backoff = d.backoffUntil ? `  backed off until ${d.backoffUntil}: ${d.backoffReason}` : '';
      const postponed = d.postponed
        ? `  postponed ${d.postponed} (busy or paced, until ${d.postponedUntil})`
        : '';
      lines.push(`${d.destination}  deferred ${d.deferred}  held ${d.held}${postponed}${backoff}`);
    }
  }
  for (const p of r.parts ?? []) {
    const when = p.state === 'held' ? 'held' : `next ${p.nextAttemptAt ?? 'now'}`;
    lines.push(
      `  ${p.partId}  ${p.destination}  ${when}  attempts ${p.attempts}  rcpts ${p.recipients}  ${p.lastReply ?? ''}`.trimEnd(),
    );
  }
  if (r.partsTotal !== undefined && r.parts && r.partsTotal > r.parts.length) {
    lines.push(`  ... ${r.partsTotal - r.parts.length} more (the ${r.parts.length} due soonest are shown)`);
  }
  for (const id of r.done ?? []) lines.push(`done: ${id}`);
  for (const f of r.failed ?? []) lines.push(`not done: ${f.partId}: ${f.reason}`);
  return lines;
}
