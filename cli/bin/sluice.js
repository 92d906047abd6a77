#!/usr/bin/env node
// `node cli/bin/sluice.js ...`: the `sluice` command for callers that start
// Node themselves (the test harness, `npm run sluice`). The installed command
// is cli/bin/sluice, a sh script that execs the project's Node 24 (one
// process, no wrapper to orphan Sluice: docs/decisions/0007). An older node
// is refused rather than wrapped.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `sluice: needs Node 24 (this is ${process.version}); run cli/bin/sluice (after 'make setup'), which uses the project's own\n`,
  );
  process.exit(1);
}
await import('../src/main.ts');
