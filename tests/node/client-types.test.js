// The TypeScript declarations of @sluice-dev/client (clients/js/src/index.d.ts)
// checked with tsc, in strict mode, against client-types.ts: a program
// that uses every call, and misuses that the types must refuse.
// typescript stays on 5.x: 7.x is a native build whose platform packages
// a lock file would have to carry for every system.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

test("the client's TypeScript declarations describe its whole API, strictly", { timeout: 120_000 }, async () => {
  // tsconfig.client-types.json: strict, ES2022 with the DOM's fetch and
  // AbortSignal, Node's module resolution (the package's exports map).
  const args = [tsc, '-p', path.join(here, 'tsconfig.client-types.json')];
  const run = await promisify(execFile)(process.execPath, args, { cwd: here }).catch((err) => err);
  assert.equal(run.code ?? 0, 0, `tsc found errors:\n${run.stdout}${run.stderr}`);
});
