/**
 * What the loader reports when a configuration is wrong: one ConfigError that
 * lists every problem found, one per line, each as
 * `<key path>: <what is wrong> — <what is expected / the fix>` with where it
 * came from (file:line:column or the SLUICE_* variable). Reporting all of them
 * at once saves the edit-run-edit loop; values of secrets are never included.
 */

export interface ConfigProblem {
  /** Key path as written in messages: ingress.listen[0].port, routing.aliases["info@example.org"]. */
  path: string;
  /** What is wrong and, after " — ", what is expected or how to fix it. */
  message: string;
  /** Where the value came from: "sluice.yaml:12:11" or "SLUICE_INGRESS__MAXCLIENTS". */
  where?: string;
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.path}: ${p.message}${p.where ? ` (${p.where})` : ''}`;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  /** The file (or other source) that was loaded. */
  readonly source: string;
  readonly problems: readonly ConfigProblem[];
  constructor(source: string, problems: readonly ConfigProblem[]) {
    const n = problems.length;
    super(
      `invalid configuration in ${source} (${n} problem${n === 1 ? '' : 's'}):\n${problems.map(formatProblem).join('\n')}`,
    );
    this.source = source;
    this.problems = problems;
  }
}

const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** ["ingress", "listen", 0, "port"] -> ingress.listen[0].port; odd keys are quoted: aliases["a@b"]. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && PLAIN_KEY.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out || '(top level)';
}
