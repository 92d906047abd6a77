/**
 * The key reference of docs/configuration.md, rendered from the schema: one
 * table per section with every key's type, default and description (the
 * schema's describe() text). The prose around it is written by hand; the part
 * between the GENERATED markers is this function's output, and a test fails
 * when the two differ, so the reference cannot drift from the schema.
 *
 *   node libs/config/src/docs.ts --write    rewrites that part of docs/configuration.md
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { z } from 'zod';
import { configSchema } from './schema.ts';
import { typeLabel, unwrap } from './schema-introspect.ts';

export const configDocsPath: string = fileURLToPath(
  new URL('../../../docs/configuration.md', import.meta.url),
);
export const GENERATED_BEGIN = '<!-- BEGIN GENERATED: node libs/config/src/docs.ts --write -->';
export const GENERATED_END = '<!-- END GENERATED -->';

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

function formatDefault(v: unknown): string {
  const text = toYaml(v, { collectionStyle: 'flow', lineWidth: 0 }).trim();
  return `\`${text}\``;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** Rows for `schema` at `path`; `item` marks a list item or map value, which gets no row of its own. */
function collectRows(schema: z.ZodType, path: string, rows: Row[], item = false): void {
  const node = unwrap(schema);
  const { core } = node;
  const row = (): Row => ({
    key: `\`${path}\``,
    type: typeLabel(schema),
    default: node.hasDefault ? formatDefault(node.defaultValue) : node.optional ? 'unset' : '**required**',
    description: node.description ?? '',
  });
  if (core instanceof z.ZodObject) {
    // A section with its own default needs no row: its keys carry their defaults.
    if (path && !node.hasDefault && !item) rows.push({ ...row(), type: 'mapping' });
    for (const [key, child] of Object.entries(core.shape as Record<string, z.ZodType>)) {
      collectRows(child, path ? `${path}.${key}` : key, rows);
    }
    return;
  }
  rows.push(row());
  if (core instanceof z.ZodArray) {
    const element = core._zod.def.element as z.ZodType;
    if (unwrap(element).core instanceof z.ZodObject) collectRows(element, `${path}[]`, rows, true);
  } else if (core instanceof z.ZodRecord) {
    const value = core._zod.def.valueType as z.ZodType;
    const keyLabel = typeLabel(core._zod.def.keyType as z.ZodType);
    if (unwrap(value).core instanceof z.ZodObject) collectRows(value, `${path}.<${keyLabel}>`, rows, true);
  }
}

/** A Markdown table with padded columns (the layout Biome's formatter gives it). */
function table(rows: Row[]): string {
  const cells = [
    ['Key', 'Type', 'Default', 'Description'],
    ...rows.map((r) => [r.key, cell(r.type), cell(r.default), cell(r.description)]),
  ];
  const width = (text: string) => [...text].length;
  const widths = [0, 1, 2, 3].map((c) => Math.max(3, ...cells.map((row) => width(row[c]!))));
  const line = (row: string[]) =>
    `| ${row.map((text, c) => text + ' '.repeat(widths[c]! - width(text))).join(' | ')} |`;
  const [head, ...body] = cells;
  return [line(head!), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...body.map(line)].join('\n');
}

/** The key reference: a table of the top-level keys, then one section per group. */
export function renderConfigDocs(): string {
  const shape = configSchema.shape as Record<string, z.ZodType>;
  const topLevel: Row[] = [];
  const sections: string[] = [];
  for (const [key, schema] of Object.entries(shape)) {
    const { core, description } = unwrap(schema);
    if (core instanceof z.ZodObject || core instanceof z.ZodRecord) {
      const rows: Row[] = [];
      collectRows(schema, key, rows);
      sections.push(`### \`${key}\`\n\n${description ?? ''}\n\n${table(rows)}`);
    } else {
      collectRows(schema, key, topLevel);
    }
  }
  return [`### Top level\n\n${table(topLevel)}`, ...sections].join('\n\n');
}

/** `markdown` with the part between the GENERATED markers replaced by the current reference. */
export function updateConfigDocs(markdown: string): string {
  const begin = markdown.indexOf(GENERATED_BEGIN);
  const end = markdown.indexOf(GENERATED_END);
  if (begin < 0 || end < begin) throw new Error(`the GENERATED markers are missing from ${configDocsPath}`);
  return `${markdown.slice(0, begin + GENERATED_BEGIN.length)}\n\n${renderConfigDocs()}\n\n${markdown.slice(end)}`;
}

if (import.meta.main && process.argv.includes('--write')) {
  writeFileSync(configDocsPath, updateConfigDocs(readFileSync(configDocsPath, 'utf8')));
  process.stdout.write(`updated ${configDocsPath}\n`);
}
