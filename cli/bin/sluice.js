#!/usr/bin/env node
// `node cli/bin/sluice.js ...`: the `sluice` command for callers that start
// Node themselves (the test harness, `npm run sluice`). The installed command
// is cli/bin/sluice, a sh script that execs the project's Node 24 (one
// process, no wrapper to orphan Sluice: docs/decisions/0007). An older node
// is refused rather than wrapped.
import { readFileSync } from 'node:fs';
import { enableCompileCache } from 'node:module';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `sluice: needs Node 24 (this is ${process.version}); run cli/bin/sluice (after 'make setup'), which uses the project's own\n`,
  );
  process.exit(1);
}
// The V8 options of cli/bin/node-options (docs/decisions/0036, 0045): when this Node was started
// without them, it replaces itself (execve: the same process, no wrapper) with one that has them
// (where execve exists: not on Windows, where Sluice then runs without them).
const wanted = readFileSync(new URL('node-options', import.meta.url), 'utf8')
  .split(/\s+/)
  .filter(Boolean);
const missing = wanted.filter((o) => !process.execArgv.includes(o));
if (missing.length > 0 && typeof process.execve === 'function') {
  try {
    process.execve(process.execPath, [
      process.execPath,
      ...missing,
      ...process.execArgv,
      ...process.argv.slice(1),
    ]);
  } catch (err) {
    process.stderr.write(`sluice: running without ${missing.join(' ')}: ${err}\n`);
  }
}
// Node's compile cache (the directory NODE_COMPILE_CACHE names, else one in the temp dir): the
// TypeScript sources are stripped once, not at every start, so the stripper (a WebAssembly module,
// ~20 MB of RSS) is not even loaded, and start-up is faster (docs/decisions/0036). Entries are keyed
// by content and Node version; a cache that cannot be written is skipped.
enableCompileCache();
await import('../src/main.ts');
