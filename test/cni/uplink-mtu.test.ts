import { afterAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { REPO, Sandbox } from '../sandbox';

/**
 * The uplink MTU (the default route's device) is looked up once per
 * UPLINK_MTU_TTL_MS in a process: finding it dumps the main routing table,
 * which a node learning a fabric's routes fills with thousands.
 */
const sb = new Sandbox('umtu');
afterAll(() => sb.cleanup());

describe('uplink MTU detection', () => {
  it('is reused within the TTL and looked up again after it', async () => {
    const node = sb.netns('node');
    node.ip('link', 'add', 'up0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'up1');
    node.ip('link', 'set', 'up0', 'up');
    node.ip('addr', 'add', '192.0.2.2/24', 'dev', 'up0');
    node.ip('route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'up0', 'onlink');
    // A fabric's worth of routes: the lookup is the cost the TTL saves.
    node.must('ip', ['-batch', '-'], { input: Array.from({ length: 10_000 }, (_, i) => `route add 10.${i >> 8}.${i & 255}.0/26 via 192.0.2.1 proto 86\n`).join('') });
    const script = `
      const { detectUplinkMtu, UPLINK_MTU_TTL_MS } = require(${JSON.stringify(path.join(REPO, 'dist/src/cni-plugin/add.js'))});
      const cp = require('node:child_process');
      (async () => {
        const t0 = Date.now();
        let t = performance.now();
        const first = await detectUplinkMtu(t0);
        const firstMs = performance.now() - t;
        cp.execFileSync('ip', ['link', 'set', 'up0', 'mtu', '1400']);
        t = performance.now();
        const cached = await detectUplinkMtu(t0 + 1000);
        const cachedMs = performance.now() - t;
        const later = await detectUplinkMtu(t0 + UPLINK_MTU_TTL_MS + 1);
        console.log(JSON.stringify({ first, cached, later, firstMs, cachedMs }));
      })();`;
    const r = await node.execAsync('node', ['-e', script], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect([out.first, out.cached, out.later]).toEqual([1450, 1450, 1400]);
    console.info(`uplink MTU with 10,000 routes: looked up in ${out.firstMs.toFixed(1)} ms, reused in ${out.cachedMs.toFixed(2)} ms`);
  });
});
