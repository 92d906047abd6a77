/**
 * Regenerate the README's comparison table from a result file:
 *   node bench/compare/readme-table.ts [bench/results/compare-<date>.json]
 * Without an argument, the newest full (not --quick) result. The table goes
 * between the `<!-- bench:compare -->` markers of README.md, with a link to
 * the run's chart.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { type CompareResult, markdownTable, replaceReadmeTable } from './report.ts';

const root = join(import.meta.dirname, '..', '..');
const resultsDir = join(root, 'bench', 'results');
const file =
  process.argv[2] ??
  join(
    resultsDir,
    readdirSync(resultsDir)
      .filter((n) => /^compare-\d{4}-\d{2}-\d{2}\.json$/.test(n))
      .sort()
      .at(-1) ??
      (() => {
        throw new Error(`no compare-<date>.json in ${resultsDir}: run npm run bench:compare first`);
      })(),
  );
const result = JSON.parse(readFileSync(file, 'utf8')) as CompareResult;
const svg = relative(root, file).replace(/\.json$/, '.svg');
const table = `${markdownTable(result)}\n\n![Sluice beside Postfix](${svg}) (from \`${basename(file)}\`)`;
const readme = join(root, 'README.md');
writeFileSync(readme, replaceReadmeTable(readFileSync(readme, 'utf8'), table));
process.stdout.write(`README.md: table from ${relative(root, file)}\n`);
