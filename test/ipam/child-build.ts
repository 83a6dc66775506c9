/**
 * Child processes (the "other CNI processes" of the crash and concurrency
 * tests) need plain JavaScript. Transpile the modules they use into a
 * directory inside the repo, so `require` still finds node_modules.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { REPO, STATE_DIR } from '../sandbox';

export function buildForChildren(tag: string, dirs = ['src/lib', 'src/datastore', 'src/ipam']): string {
  const out = fs.mkdtempSync(path.join(STATE_DIR, `${tag}-`));
  for (const d of dirs) {
    for (const f of fs.readdirSync(path.join(REPO, d))) {
      if (!f.endsWith('.ts') || f.endsWith('.test.ts')) continue;
      const src = fs.readFileSync(path.join(REPO, d, f), 'utf8');
      const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
      fs.mkdirSync(path.join(out, d), { recursive: true });
      fs.writeFileSync(path.join(out, d, f.replace(/\.ts$/, '.js')), js.outputText);
    }
  }
  return out;
}

/**
 * A child that allocates (and now and then releases) in a loop, printing one
 * line per committed allocation: `<containerId> <address>`.
 */
export const ALLOCATE_LOOP = `
const { BlockIpam } = require('./src/ipam/block-ipam');
const { openStore } = require('./src/datastore/open');
const cfg = JSON.parse(process.argv[2]);
(async () => {
  const ipam = new BlockIpam({ store: openStore(cfg.datastore), node: cfg.node });
  for (let i = 0; i < cfg.count; i++) {
    const key = { network: 'crash', containerId: cfg.node + '-' + i, ifname: 'eth0' };
    const ips = await ipam.allocate({ key, pools: cfg.pools });
    process.stdout.write(key.containerId + ' ' + ips.map((x) => x.address).join(',') + '\\n');
    if (i % 4 === 3) await ipam.release({ network: 'crash', containerId: cfg.node + '-' + (i - 2), ifname: 'eth0' });
  }
  await ipam.close();
  process.stdout.write('done\\n');
  process.exit(0);
})().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\\n'); process.exit(1); });
`;
