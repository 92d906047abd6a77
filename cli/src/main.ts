/**
 * The `sluice` command: run services, check a config, follow a message.
 *
 *   sluice run [SERVICE...] [--config FILE]   start services (all by default)
 *   sluice check-config [FILE]                validate a config file and summarise it
 *   sluice trace QUEUE-ID [--config FILE] [--json]   print a message's timeline
 *   sluice lookup ADDRESS [--config FILE]     where an address goes, and why
 *   sluice sink [--port 2526] [--dir DIR]     a development SMTP sink
 *   sluice srs forward|reverse ADDRESS        SRS by hand (srs-command.ts)
 *   sluice dkim keygen --domain D --selector S   a DKIM key and its DNS record (dkim-command.ts)
 *
 * Wiring only: each command's logic lives in its own module or library.
 */
import { parseArgs } from 'node:util';
import { Bus, busConfigFrom } from '@sluice/bus';
import { ConfigError, type SluiceConfig } from '@sluice/config';
import { createLogger } from '@sluice/log';
import { buildRoutingTable, lookupAddress } from '@sluice/resolver';
import { loadProcessConfig, runMain } from '@sluice/runtime';
import { startDevSink } from './dev-sink.ts';
import { selectServices } from './services.ts';
import { renderTimeline } from './timeline.ts';

const USAGE = `usage:
  sluice run [SERVICE...] [--config FILE]        start services (default: all) with an embedded NATS
                                                 when nats.servers is empty; services: ingress filter
                                                 resolver rewriter egress
  sluice check-config [FILE]                     validate a config file (default: the example)
  sluice trace QUEUE-ID [--config FILE] [--json] print a message's timeline
  sluice lookup ADDRESS [--config FILE]          where an address goes, and why
  sluice sink [--host H] [--port 2526] [--dir DIR]  development SMTP sink (prints each message)
  sluice srs forward|reverse ADDRESS [--config FILE | --domain D --secret-file F]
  sluice dkim keygen --domain D --selector S [--type rsa|ed25519] [--out FILE]
Config: --config FILE, else $SLUICE_CONFIG, else config/sluice.example.yaml.`;

function fail(message: string, code = 2): never {
  process.stderr.write(`sluice: ${message}\n`);
  process.exit(code);
}

function loadOrExplain(file: string | undefined) {
  try {
    return loadProcessConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
}

function natsServersOf(config: SluiceConfig): string[] {
  if (config.nats.servers.length > 0) return config.nats.servers;
  const e = config.nats.embedded;
  return [`nats://${e.host}:${e.port}`];
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  // Commands with their own options live in their own modules, loaded on demand.
  if (command === 'srs') {
    process.exitCode = await (await import('./srs-command.ts')).runSrsCommand(rest);
    return;
  }
  if (command === 'dkim') {
    process.exitCode = await (await import('./dkim-command.ts')).runDkimCommand(rest);
    return;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      host: { type: 'string' },
      port: { type: 'string' },
      dir: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || command === undefined || command === 'help' || command === '--help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  switch (command) {
    case 'run': {
      let services: ReturnType<typeof selectServices>;
      try {
        services = selectServices(positionals);
      } catch (err) {
        fail((err as Error).message);
      }
      await runMain({
        loadConfig: () => {
          const pc = loadProcessConfig(values.config);
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
      const pc = loadOrExplain(positionals[0] ?? values.config);
      const c = pc.config;
      const lines = [
        `${pc.file}: OK`,
        `  hostname ${c.hostname}; domains ${[c.domains.primary, ...c.domains.aliases].join(', ')}`,
        `  ${Object.keys(c.routing.aliases).length} aliases, ${Object.keys(c.routing.forwards).length} forwards, ${Object.keys(c.transports).length} transports${c.relay ? ', relay ' + c.relay.host : ''}`,
        `  ingress ${c.ingress.listen.map((l) => `${l.host}:${l.port}`).join(', ')}; max message ${c.ingress.maxMessageBytes} bytes`,
        `  nats ${c.nats.servers.length ? c.nats.servers.join(', ') : `embedded on ${c.nats.embedded.host}:${c.nats.embedded.port}`}, replicas ${c.nats.replicas}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
      return;
    }
    case 'lookup': {
      const address = positionals[0] ?? fail('lookup needs an ADDRESS');
      const { config } = loadOrExplain(values.config);
      const reply = lookupAddress(buildRoutingTable(config), address);
      if (values.json) process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
      else {
        process.stdout.write(`${address}: ${reply.result}${reply.reason ? ` (${reply.reason})` : ''}\n`);
        for (const step of reply.trail) process.stdout.write(`  ${step}\n`);
        if (reply.targets.length) process.stdout.write(`  => ${reply.targets.join(', ')}\n`);
      }
      process.exitCode = reply.result === 'ok' ? 0 : reply.result === 'tempfail' ? 75 : 1;
      return;
    }
    case 'trace': {
      const queueId = positionals[0] ?? fail('trace needs a QUEUE-ID (from the 250 reply or the logs)');
      const { config } = loadOrExplain(values.config);
      const log = createLogger({
        level: 'warn',
        instance: 'sluice-cli',
        destination: process.stderr as never,
      });
      const bus = await Bus.connect(
        busConfigFrom({ ...config, nats: { ...config.nats, servers: natsServersOf(config) } }, 'sluice-cli'),
        log,
      ).catch((err: Error) =>
        fail(`cannot reach NATS at ${natsServersOf(config).join(', ')}: ${err.message}`, 1),
      );
      try {
        const events = await bus.readTimeline(queueId.toUpperCase());
        process.stdout.write(
          values.json ? `${JSON.stringify(events, null, 2)}\n` : `${renderTimeline(events)}\n`,
        );
        if (events.length === 0) process.exitCode = 1;
      } finally {
        await bus.close();
      }
      return;
    }
    case 'sink': {
      const host = values.host ?? '127.0.0.1';
      const port = Number(values.port ?? 2526);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        fail(`--port must be 0-65535, got ${values.port}`);
      const sink = await startDevSink({
        host,
        port,
        dir: values.dir,
        onMessage: (m) =>
          process.stdout.write(
            `${new Date().toISOString()} from <${m.mailFrom}> to ${m.rcptTo.map((r) => `<${r}>`).join(' ')} ${m.size} bytes "${m.subject}"${m.file ? ` -> ${m.file}` : ''}\n`,
          ),
      });
      process.stderr.write(
        `sluice sink: listening on ${host}:${sink.port}${values.dir ? `, writing to ${values.dir}` : ''}\n`,
      );
      const stop = () => void sink.stop().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      return;
    }
    default:
      fail(`unknown command ${command}\n${USAGE}`);
  }
}

await main(process.argv.slice(2));
