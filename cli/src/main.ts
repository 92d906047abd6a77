/**
 * The `sluice` command: run services, check a config, follow a message.
 *
 *   sluice run [SERVICE...] [--config FILE]   start services (all by default)
 *   sluice check-config [FILE]                validate a config file and summarise it
 *   sluice trace QUEUE-ID [--config FILE] [--json]   print a message's timeline
 *   sluice lookup ADDRESS [--config FILE]     where an address goes, and why (asks the resolver)
 *   sluice ldap refresh [--force]             re-read LDAP now (asks the resolver)
 *   sluice sink [--port 2526] [--dir DIR]     a development SMTP sink
 *   sluice srs forward|reverse ADDRESS        SRS by hand (srs-command.ts)
 *   sluice queue list|retry|hold|release|delete|bounce   the egress delivery queue (queue-command.ts)
 *   sluice dkim keygen --domain D --selector S   a DKIM key and its DNS record (dkim-command.ts)
 *   sluice dkim rotate --domain D --selector NEW  the next key and the rotation steps
 *   sluice auth refresh|bans|unban|check ...     submission authentication (auth-command.ts)
 *
 * Wiring only: each command's logic lives in its own module or library, and
 * is imported when that command runs, so `sluice --help` (and a typo) answer
 * at once instead of loading every service first. Usage errors (an unknown
 * command or option, a missing argument) are one line on stderr and exit 2.
 */
import { parseArgs } from 'node:util';
import { commandHelp, commandOptions, isCommand, USAGE } from './usage.ts';

function fail(message: string, code = 2): never {
  process.stderr.write(`sluice: ${message}\n`);
  process.exit(code);
}

async function loadOrExplain(file: string | undefined) {
  const [{ ConfigError }, { loadProcessConfig }] = await Promise.all([
    import('@sluice/config'),
    import('@sluice/runtime/process-config'),
  ]);
  try {
    return loadProcessConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  // srs, queue, dkim and auth parse their own options, in their own modules (loaded on demand).
  if (command === 'srs') {
    process.exitCode = await (await import('./srs-command.ts')).runSrsCommand(rest);
    return;
  }
  if (command === 'queue') {
    process.exitCode = await (await import('./queue-command.ts')).runQueueCommand(rest);
    return;
  }
  if (command === 'dkim') {
    process.exitCode = await (await import('./dkim-command.ts')).runDkimCommand(rest);
    return;
  }
  if (command === 'auth') {
    process.exitCode = await (await import('./auth-command.ts')).runAuthCommand(rest);
    return;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    const topic = command === 'help' ? rest[0] : undefined;
    process.stdout.write(`${topic && isCommand(topic) ? commandHelp(topic) : USAGE}\n`);
    return;
  }
  if (!isCommand(command)) fail(`unknown command '${command}' (try 'sluice --help')`);
  let parsed: ReturnType<
    typeof parseArgs<{ options: ReturnType<typeof commandOptions>; allowPositionals: true }>
  >;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: commandOptions(command),
    });
  } catch (err) {
    // parseArgs' messages name the option, then add advice on '--' we do not need: keep the first sentence.
    const first = (err as Error).message.split(/\.(?:\s|$)/)[0];
    fail(`${command}: ${first} (try 'sluice ${command} --help')`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const positionals = parsed.positionals;
  const str = (k: string) => values[k] as string | undefined;
  if (values.help) {
    process.stdout.write(`${commandHelp(command)}\n`);
    return;
  }
  switch (command) {
    case 'run': {
      const { selectServices } = await import('./services.ts');
      const { loadProcessConfig, runMain } = await import('@sluice/runtime');
      let services: Awaited<ReturnType<typeof selectServices>>;
      try {
        services = selectServices(positionals);
      } catch (err) {
        fail((err as Error).message);
      }
      await runMain({
        loadConfig: () => {
          const pc = loadProcessConfig(str('config'));
          if (pc.isExample) {
            process.stderr.write(
              `sluice: no config given (--config or SLUICE_CONFIG): running the example configuration ${pc.file}\n`,
            );
          }
          return pc;
        },
        services,
      });
      return;
    }
    case 'check-config': {
      const { describeConfig } = await import('./config-summary.ts');
      const pc = await loadOrExplain(positionals[0] ?? str('config'));
      process.stdout.write(`${describeConfig(pc.file, pc.config).join('\n')}\n`);
      return;
    }
    case 'lookup': {
      const address = positionals[0] ?? fail('lookup needs an ADDRESS');
      const pc = await loadOrExplain(str('config'));
      const { lookupExitCode, lookupViaResolver, renderLookup } = await import('./lookup.ts');
      const reply = await lookupViaResolver(pc, address, values.live === true).catch((err: Error) =>
        fail(err.message, 69),
      );
      process.stdout.write(
        `${values.json ? JSON.stringify(reply, null, 2) : renderLookup(address, reply)}\n`,
      );
      process.exitCode = lookupExitCode(reply);
      return;
    }
    case 'ldap': {
      if (positionals[0] !== 'refresh')
        fail("ldap: the only subcommand is 'refresh' (try 'sluice ldap --help')");
      const pc = await loadOrExplain(str('config'));
      if (!pc.config.routing.ldap) fail('ldap refresh: routing.ldap is not configured in this config', 2);
      const { ldapRefresh, refreshExitCode, renderRefresh } = await import('./ldap-refresh.ts');
      const reply = await ldapRefresh(pc, values.force === true).catch((err: Error) => fail(err.message, 69));
      process.stdout.write(`${values.json ? JSON.stringify(reply, null, 2) : renderRefresh(reply)}\n`);
      process.exitCode = refreshExitCode(reply);
      return;
    }
    case 'trace': {
      const queueId = positionals[0] ?? fail('trace needs a QUEUE-ID (from the 250 reply or the logs)');
      const pc = await loadOrExplain(str('config'));
      const { traceMessage } = await import('./trace.ts');
      const result = await traceMessage(pc, queueId, values.json === true).catch((err: Error) =>
        fail(err.message, 1),
      );
      process.stdout.write(`${result.text}\n`);
      if (!result.found) process.exitCode = 1;
      return;
    }
    case 'sink': {
      const host = str('host') ?? '127.0.0.1';
      const port = Number(str('port') ?? 2526);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        fail(`--port must be 0-65535, got ${str('port')}`);
      const { startDevSink } = await import('./dev-sink.ts');
      const dir = str('dir');
      const sink = await startDevSink({
        host,
        port,
        dir,
        onMessage: (m) =>
          process.stdout.write(
            `${new Date().toISOString()} from <${m.mailFrom}> to ${m.rcptTo.map((r) => `<${r}>`).join(' ')} ${m.size} bytes "${m.subject}"${m.file ? ` -> ${m.file}` : ''}\n`,
          ),
      }).catch((err: NodeJS.ErrnoException) =>
        fail(
          err.code === 'EADDRINUSE'
            ? `sink: ${host}:${port} is already in use (choose another with --port)`
            : `sink: ${err.message}`,
          1,
        ),
      );
      process.stderr.write(
        `sluice sink: listening on ${host}:${sink.port}${dir ? `, writing to ${dir}` : ''}\n`,
      );
      const stop = () => void sink.stop().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      return;
    }
  }
}

await main(process.argv.slice(2));
