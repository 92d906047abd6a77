/**
 * Parses the YAML text of a config file (YAML 1.2, the `yaml` package) and
 * keeps the document so that later problems can point at the line and column
 * of the key or value they are about. Syntax errors become ConfigProblems with
 * line:column; their text is the parser's first sentence only, because the
 * parser's longer form quotes the source line, which may hold a secret.
 * Anchors, aliases and `<<` merge keys work (for repeated transports).
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { ConfigProblem } from './config-error.ts';

export interface YamlSource {
  /** The document as plain data (undefined for an empty document). */
  value: unknown;
  /** Syntax errors; when there are any, `value` is not usable. */
  problems: ConfigProblem[];
  /**
   * "file:line:col" of the value at a path, of its key when `at` is 'key'; where
   * the path goes further than the document, of the deepest part that exists.
   */
  locate(path: readonly PropertyKey[], at?: 'key' | 'value'): string | undefined;
}

export function parseYamlSource(text: string, sourceName: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  const where = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return `${sourceName}:${line}:${col}`;
  };
  const problems: ConfigProblem[] = doc.errors.map((e) => ({
    path: where(e.pos[0]),
    message: `YAML syntax error: ${e.message.replace(/ at line \d+, column \d+[\s\S]*$/, '')} — fix the YAML here`,
  }));
  let value: unknown;
  if (problems.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      problems.push({
        path: sourceName,
        message: `YAML error: ${(err as Error).message} — simplify the YAML`,
      });
    }
  }

  const locate = (path: readonly PropertyKey[], at: 'key' | 'value' = 'value'): string | undefined => {
    let node: unknown = doc.contents;
    let found: Node | undefined = doc.contents ?? undefined;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        if (last && at === 'key' && isScalar(pair.key))
          return pair.key.range ? where(pair.key.range[0]) : undefined;
        node = pair.value;
        if (isScalar(pair.key)) found = pair.key;
        if (node && (isMap(node) || isSeq(node) || isScalar(node))) found = node;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (!item) break;
        node = item;
        if (isMap(item) || isSeq(item) || isScalar(item)) found = item;
      } else {
        break;
      }
    }
    return found?.range ? where(found.range[0]) : undefined;
  };

  return { value, problems, locate };
}
