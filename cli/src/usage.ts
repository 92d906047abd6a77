/**
 * The `sluice` command's usage text and each command's options and help, in
 * one place, free of imports: `sluice --help` and `sluice CMD --help` answer
 * from here without loading any service.
 */

export const COMMANDS = ['run', 'check-config', 'trace', 'lookup', 'ldap', 'sink'] as const;
export type CommandName = (typeof COMMANDS)[number];

export const USAGE = `usage:
  sluice run [SERVICE...] [--config FILE]        start services (default: all) with an embedded NATS
                                                 when nats.servers is empty; services: ingress filter
                                                 resolver rewriter egress
  sluice check-config [FILE]                     validate a config file (default: the example)
  sluice trace QUEUE-ID [--config FILE] [--json] print a message's timeline
  sluice lookup ADDRESS [--json] [--live]        where an address goes, and why (asks the running resolver)
  sluice ldap refresh [--force] [--json]         re-read the LDAP directory now (asks the running resolver)
  sluice sink [--host H] [--port 2526] [--dir DIR]  development SMTP sink (prints each message)
  sluice srs forward|reverse ADDRESS [--config FILE | --domain D --secret-file F]
  sluice queue list [--destination D] [--json]   the egress delivery queue per destination
  sluice queue retry|hold|release|delete|bounce ID | --destination D   act on waiting mail
  sluice dkim keygen --domain D --selector S [--type rsa|ed25519] [--out FILE]
  sluice dkim rotate --domain D --selector NEW [--old OLD]   the next key and the rotation steps
  sluice auth refresh [--force]                  read LDAP into the submission's credential snapshot now
  sluice auth bans [IP|LOGIN] [--all]            brute-force bans in force (submission AUTH)
  sluice auth unban IP|LOGIN                     lift the bans of a network or a user
  sluice auth check LOGIN                        is LOGIN in the credential snapshot (hash format, age, bans)
  sluice COMMAND --help                          help on one command
Config: --config FILE, else $SLUICE_CONFIG, else config/sluice.example.yaml.`;

const CONFIG_LINE = '  -c, --config FILE  configuration file (else $SLUICE_CONFIG, else the example)';

const HELP: Record<CommandName, string> = {
  run: `usage: sluice run [SERVICE...] [--config FILE]
Start services (default: all of ingress filter resolver rewriter egress). With nats.servers
empty, an embedded nats-server is started on nats.embedded (data dir locked to this process).
Ctrl-C or SIGTERM: stop accepting, finish in-flight work, then stop NATS; a second signal exits at once.
${CONFIG_LINE}`,
  'check-config': `usage: sluice check-config [FILE]
Validate a configuration file and print a summary; a problem names the key and the fix (exit 2).
${CONFIG_LINE}`,
  trace: `usage: sluice trace QUEUE-ID [--config FILE] [--json]
Print what each stage decided about a message (its timeline); exit 1 when nothing is known.
${CONFIG_LINE}
      --json         the events as JSON`,
  lookup: `usage: sluice lookup ADDRESS [--config FILE] [--json] [--live]
Ask the running resolver (over NATS) where an address goes and why: the sources that decided
(config, or the LDAP snapshot with its version and age), every step, the targets and routes.
Exit 0 ok, 1 refused, 75 tempfail, 69 no resolver answered.
${CONFIG_LINE}
      --json         the answer as JSON
      --live         also ask the LDAP directory now (next to the snapshot's answer)`,
  ldap: `usage: sluice ldap refresh [--force] [--config FILE] [--json]
Ask one running resolver to re-read the LDAP directory (routing.ldap) now; every replica takes the
new snapshot. A refresh deleting more than routing.ldap.maxDeleteShare of the entries is held back.
Exit 0 applied or unchanged, 1 held back or LDAP unreachable, 69 no resolver answered.
${CONFIG_LINE}
      --force        apply a refresh even if it deletes many entries
      --json         the answer as JSON`,
  sink: `usage: sluice sink [--host H] [--port 2526] [--dir DIR]
A development SMTP sink: accepts every message and prints one line per message.
      --host H       address to listen on (default 127.0.0.1)
      --port N       port (default 2526; 0 picks a free one)
      --dir DIR      also write each message to DIR/*.eml`,
};

type OptionSpec = { type: 'string' | 'boolean'; short?: string };

const common: Record<string, OptionSpec> = { help: { type: 'boolean', short: 'h' } };
const config: Record<string, OptionSpec> = { config: { type: 'string', short: 'c' } };

const OPTIONS: Record<CommandName, Record<string, OptionSpec>> = {
  run: { ...common, ...config },
  'check-config': { ...common, ...config },
  trace: { ...common, ...config, json: { type: 'boolean' } },
  lookup: { ...common, ...config, json: { type: 'boolean' }, live: { type: 'boolean' } },
  ldap: { ...common, ...config, json: { type: 'boolean' }, force: { type: 'boolean' } },
  sink: { ...common, host: { type: 'string' }, port: { type: 'string' }, dir: { type: 'string' } },
};

export function isCommand(name: string): name is CommandName {
  return (COMMANDS as readonly string[]).includes(name);
}

export function commandHelp(command: CommandName): string {
  return HELP[command];
}

export function commandOptions(command: CommandName): Record<string, OptionSpec> {
  return OPTIONS[command];
}
