// Build: compile TypeScript to dist/src, then write the executables into
// dist/bin (CNI_PATH can point there). Each binary is a tiny launcher that
// calls the entry module's exported run().
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

// The version and git commit `ternctl version` reports (TERN_COMMIT overrides, e.g. for a tarball build).
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
let commit = process.env.TERN_COMMIT;
if (!commit) {
  try {
    commit = execFileSync('git', ['-C', root, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    commit = 'unknown';
  }
}
fs.writeFileSync(path.join(root, 'dist/build-info.json'), JSON.stringify({ version: pkg.version, commit }) + '\n');

// V8 flags per binary, in the shebang (`env -S`, coreutils 8.30+): they must be
// set before the VM starts, and this launcher is what systemd and operators run.
// ternctl runs the long-lived daemons. During a full-table BGP burst V8 grows
// its young generation to 32 MiB and lets the old one fill with promoted
// garbage up to several times the live heap; a 1 MiB semi-space and a 25%
// growing step keep both near what is live, at no measured CPU cost
// (--optimize-for-size did the same at twice the CPU). BENCHMARKS.md, "BGP".
// The CNI binaries live for milliseconds: no flags.
const bins = {
  'tern-standalone': ['bin/tern-standalone.js', ''],
  'tern-ipam': ['bin/tern-ipam.js', ''],
  ternctl: ['bin/ternctl.js', '--max-semi-space-size=2 --heap-growing-percent=25'],
};
const binDir = path.join(root, 'dist/bin');
fs.mkdirSync(binDir, { recursive: true });
for (const [name, [entry, flags]] of Object.entries(bins)) {
  if (!fs.existsSync(path.join(root, 'dist/src', entry))) continue;
  const file = path.join(binDir, name);
  const shebang = flags ? `#!/usr/bin/env -S node ${flags}` : '#!/usr/bin/env node';
  // Node 22+ keeps compiled code across runs with enableCompileCache (a one-shot CNI process compiles
  // every module it loads on each run); Node 20 has no such call, and the line does nothing there.
  fs.writeFileSync(file, `${shebang}\nrequire('node:module').enableCompileCache?.();\nrequire('../src/${entry}').run();\n`);
  fs.chmodSync(file, 0o755);
}

// `tern`, the binary runtimes execute, is the native shim: it forwards to the
// node daemon's socket and falls back to tern-standalone when no daemon runs.
const shim = path.join(root, 'native/build/Release/tern-cni-shim');
if (!fs.existsSync(shim)) throw new Error('native/build/Release/tern-cni-shim is missing: run npm install (or npm run install)');
fs.copyFileSync(shim, path.join(binDir, 'tern.tmp'));
fs.chmodSync(path.join(binDir, 'tern.tmp'), 0o755);
fs.renameSync(path.join(binDir, 'tern.tmp'), path.join(binDir, 'tern'));
