// Build: compile TypeScript to dist/src, then write the executables into
// dist/bin (CNI_PATH can point there). Each binary is a tiny launcher that
// calls the entry module's exported run().
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
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
  'tern-standalone': ['bin/tern-standalone.js', '', true],
  'tern-ipam': ['bin/tern-ipam.js', '', true],
  ternctl: ['bin/ternctl.js', '--max-semi-space-size=2 --heap-growing-percent=25', false],
};

// The CNI binaries start once per ADD or DEL and exit, and Node 20 spends more
// on finding, reading and wrapping a few hundred module files than on the work
// (~60 ms here, BENCHMARKS.md "Standalone ADD"): they load one bundled file.
// Left outside it, loaded from node_modules when used: modules that find files
// beside themselves at run time (native bindings, pino's worker threads) and
// etcd3 (its gRPC stack is needed only on an etcd datastore). better-sqlite3 is
// inside: the datastore names its addon by path (datastore/sqlite-store.ts).
const EXTERNAL = [/^etcd3(\/|$)/, /^pino(\/|$)/, /\.node$/];
const keepNetlinkBinding = {
  name: 'keep-netlink-binding',
  // netlink/dist/raw.js loads its addon from its own __dirname, which a bundle would move.
  resolveId(id, importer) {
    if (id === './raw' && importer && /node_modules[\\/]netlink[\\/]dist[\\/][^\\/]+\.js$/.test(importer)) return { id: 'netlink/dist/raw', external: true };
    return null;
  },
};
const bundleDir = path.join(root, 'dist/bundle');
fs.rmSync(bundleDir, { recursive: true, force: true });
const { build } = await import('rolldown');
for (const [name, [entry, , bundled]] of Object.entries(bins)) {
  if (!bundled || !fs.existsSync(path.join(root, 'dist/src', entry))) continue;
  await build({
    input: path.join(root, 'dist/src', entry),
    platform: 'node',
    external: EXTERNAL,
    plugins: [keepNetlinkBinding],
    output: { file: path.join(bundleDir, `${name}.cjs`), format: 'cjs', codeSplitting: false },
    logLevel: 'warn',
  });
}

const binDir = path.join(root, 'dist/bin');
fs.mkdirSync(binDir, { recursive: true });
for (const [name, [entry, flags, bundled]] of Object.entries(bins)) {
  if (!fs.existsSync(path.join(root, 'dist/src', entry))) continue;
  const file = path.join(binDir, name);
  // The CNI binaries start once per request: name the Node that built them (and their native addons) instead
  // of an env(1) exec and a PATH search first. ternctl keeps env, for its V8 flags.
  const shebang = flags ? `#!/usr/bin/env -S node ${flags}` : bundled ? `#!${process.execPath}` : '#!/usr/bin/env node';
  let body;
  if (bundled) {
    // Node 22+ keeps compiled code across runs itself (enableCompileCache); on Node 20
    // lib/code-cache.ts does it for the bundle, keyed by the bundle's content.
    const bundle = `../bundle/${name}.cjs`;
    const hash = createHash('sha256').update(fs.readFileSync(path.join(bundleDir, `${name}.cjs`))).digest('hex').slice(0, 16);
    body = [
      "const m = require('node:module');",
      `if (m.enableCompileCache) { m.enableCompileCache(); require('${bundle}').run(); }`,
      `else require('../src/lib/code-cache.js').runBundle(require('node:path').join(__dirname, '${bundle}'), '${hash}');`,
    ].join('\n');
  } else {
    body = `require('node:module').enableCompileCache?.();\nrequire('../src/${entry}').run();`;
  }
  fs.writeFileSync(file, `${shebang}\n${body}\n`);
  fs.chmodSync(file, 0o755);
}

// `tern`, the binary runtimes execute, is the native shim: it forwards to the
// node daemon's socket and falls back to tern-standalone when no daemon runs.
const shim = path.join(root, 'native/build/Release/tern-cni-shim');
if (!fs.existsSync(shim)) throw new Error('native/build/Release/tern-cni-shim is missing: run npm install (or npm run install)');
fs.copyFileSync(shim, path.join(binDir, 'tern.tmp'));
fs.chmodSync(path.join(binDir, 'tern.tmp'), 0o755);
fs.renameSync(path.join(binDir, 'tern.tmp'), path.join(binDir, 'tern'));
