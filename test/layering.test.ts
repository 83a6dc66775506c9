/**
 * Imports point one way: lib <- pure cores <- adapters <- entry points. This
 * reads every import in src/ (type-only ones too: a core that names an
 * adapter's type depends on it) and fails on an edge the table below does not
 * allow, naming the file, the import and the layers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

type Layer = 'lib' | 'core' | 'adapter' | 'entry';

/** Which layer may import which: the whole rule. */
const ALLOWED: Record<Layer, readonly Layer[]> = {
  lib: ['lib'],
  core: ['lib', 'core'],
  adapter: ['lib', 'core', 'adapter'],
  entry: ['lib', 'core', 'adapter'], // an entry point never imports another
};

/**
 * Pure cores: no sockets, files, processes or clocks of their own; they get
 * what they need as arguments or through an interface. Entry points are the
 * executables' modules in bin/. Everything else is an adapter: the ternctl
 * commands in cli/, the node daemon's parts, the kernel, datastore and socket
 * code, and the index.ts barrels, which re-export adapters.
 */
const CORES = [
  'acl/compile.ts', 'acl/errors.ts', 'acl/explain.ts', 'acl/model.ts', 'acl/parse.ts', 'acl/render.ts', 'acl/resolve.ts', 'acl/selector.ts', 'acl/simulate.ts', 'acl/state.ts',
  'bgp-speaker/codec/', 'bgp-speaker/rib/', 'bgp-speaker/fsm.ts',
  'cni-plugin/config.ts', 'cni-plugin/env.ts', 'cni-plugin/version.ts', 'cni-plugin/result.ts',
  'dataplane/endpoint-plan.ts', 'dataplane/ipset-codec.ts', 'dataplane/route-codec.ts',
  'datastore/config.ts', 'datastore/mirror.ts', 'datastore/types.ts',
  'ipam/allocator.ts', 'ipam/model.ts', 'ipam/types.ts',
  'node-daemon/cni-wire.ts',
  'overlay/addr.ts', 'overlay/diff.ts', 'overlay/doctor-report.ts', 'overlay/plan.ts', 'overlay/select.ts', 'overlay/types.ts', 'overlay/vlan-plan.ts', 'overlay/vtep-mac.ts',
];

const SRC = path.resolve(__dirname, '..', 'src');

export function layerOf(rel: string): Layer {
  if (rel.startsWith('lib/')) return 'lib';
  if (rel.startsWith('bin/')) return 'entry';
  if (CORES.some((c) => (c.endsWith('/') ? rel.startsWith(c) : rel === c))) return 'core';
  return 'adapter';
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return sources(p);
    return d.name.endsWith('.ts') && !d.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** Relative imports of a file, resolved to paths under src/. */
function importsOf(file: string): { spec: string; target: string }[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: { spec: string; target: string }[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/gm)) {
    const base = path.resolve(path.dirname(file), m[1]);
    const target = [`${base}.ts`, path.join(base, 'index.ts')].find((p) => fs.existsSync(p));
    if (!target) throw new Error(`${path.relative(SRC, file)}: cannot resolve ${m[1]}`);
    out.push({ spec: m[1], target: path.relative(SRC, target) });
  }
  return out;
}

/** Every import edge between files of different layers or within entry points, with whether the table allows it. */
function edges() {
  return sources(SRC).flatMap((f) => {
    const from = path.relative(SRC, f);
    return importsOf(f).map(({ spec, target }) => ({ from, spec, target, fromLayer: layerOf(from), toLayer: layerOf(target) }));
  });
}

describe('import layering', () => {
  it('classifies files as the table says', () => {
    const rows: [string, Layer][] = [
      ['lib/errors.ts', 'lib'],
      ['bgp-speaker/codec/open.ts', 'core'],
      ['bgp-speaker/rib/decision.ts', 'core'],
      ['bgp-speaker/fib.ts', 'adapter'],
      ['dataplane/route-codec.ts', 'core'],
      ['dataplane/rtnl.ts', 'adapter'],
      ['acl/index.ts', 'adapter'],
      ['bin/tern-ipam.ts', 'entry'],
      ['bin/ternctl.ts', 'entry'],
      ['cli/main.ts', 'adapter'],
    ];
    for (const [f, l] of rows) expect(layerOf(f), f).toBe(l);
    // Every core named in the table exists, so the table cannot rot silently.
    for (const c of CORES) expect(fs.existsSync(path.join(SRC, c)), c).toBe(true);
  });

  it('has no edge the layering does not allow', () => {
    const all = edges();
    expect(all.length).toBeGreaterThan(300);
    const bad = all.filter((e) => !ALLOWED[e.fromLayer].includes(e.toLayer)).map((e) => `${e.from} (${e.fromLayer}) imports ${e.spec} -> ${e.target} (${e.toLayer})`);
    expect(bad).toEqual([]);
  });
});
