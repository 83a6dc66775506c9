import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, Sandbox } from '../sandbox';

/**
 * The uplink MTU (the default route's device) is looked up once per
 * UPLINK_MTU_TTL_MS in a process: finding it dumps the main routing table,
 * which a node learning a fabric's routes fills with thousands. One-shot
 * plugin processes pass the device found on through a note file.
 */
const sb = new Sandbox('umtu');
afterAll(() => sb.cleanup());

/** A node whose default route leaves through up0, MTU 1450. */
function uplinkNode(name: string) {
  const node = sb.netns(name);
  node.ip('link', 'add', 'up0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'up1');
  node.ip('link', 'set', 'up0', 'up');
  node.ip('addr', 'add', '192.0.2.2/24', 'dev', 'up0');
  node.ip('route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'up0', 'onlink');
  return node;
}

describe('uplink MTU detection', () => {
  it('is reused within the TTL and looked up again after it', async () => {
    const node = uplinkNode('node');
    // A fabric's worth of routes: the lookup is the cost the TTL saves.
    node.must('ip', ['-batch', '-'], { input: Array.from({ length: 10_000 }, (_, i) => `route add 10.${i >> 8}.${i & 255}.0/26 via 192.0.2.1 proto 86\n`).join('') });
    const script = `
      const { detectUplinkMtu, UPLINK_MTU_TTL_MS } = require(${JSON.stringify(path.join(REPO, 'dist/src/cni-plugin/add.js'))});
      const cp = require('node:child_process');
      (async () => {
        const t0 = Date.now();
        let t = performance.now();
        const first = await detectUplinkMtu(t0, ${JSON.stringify(sb.tmpdir())});
        const firstMs = performance.now() - t;
        cp.execFileSync('ip', ['link', 'set', 'up0', 'mtu', '1400']);
        t = performance.now();
        const cached = await detectUplinkMtu(t0 + 1000, '/nonexistent');
        const cachedMs = performance.now() - t;
        const later = await detectUplinkMtu(t0 + UPLINK_MTU_TTL_MS + 1, '/nonexistent');
        console.log(JSON.stringify({ first, cached, later, firstMs, cachedMs }));
      })();`;
    const r = await node.execAsync('node', ['-e', script], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect([out.first, out.cached, out.later]).toEqual([1450, 1450, 1400]);
    console.info(`uplink MTU with 10,000 routes: looked up in ${out.firstMs.toFixed(1)} ms, reused in ${out.cachedMs.toFixed(2)} ms`);
  });

  it('a later process asks only for the device an earlier one found, and looks again when it is gone or renamed', async () => {
    const node = uplinkNode('node2');
    const dir = sb.tmpdir();
    const t0 = Date.now();
    // Each call is a process of its own, as each standalone ADD is.
    const detect = async (at: number) => {
      const r = await node.execAsync('node', ['-e', `require(${JSON.stringify(path.join(REPO, 'dist/src/cni-plugin/add.js'))}).detectUplinkMtu(${at}, ${JSON.stringify(dir)}).then((m) => console.log(m))`], { timeoutMs: 30_000 });
      expect(r.code, r.stderr).toBe(0);
      return Number(r.stdout.trim());
    };
    expect(await detect(t0)).toBe(1450);
    const notes = fs.readdirSync(dir).filter((f) => /^uplink-\d+\.json$/.test(f));
    expect(notes).toHaveLength(1);
    // Without the default route a full lookup would answer 1500: the note's device, with its MTU now, is what is used.
    node.ip('route', 'del', 'default');
    node.ip('link', 'set', 'up0', 'mtu', '1400');
    expect(await detect(t0 + 1000)).toBe(1400);
    // Renamed (or another device at that index): the note is not trusted, the table is read: no default route, 1500.
    node.ip('link', 'set', 'up0', 'down');
    node.ip('link', 'set', 'up0', 'name', 'up9');
    node.ip('link', 'set', 'up9', 'up');
    expect(await detect(t0 + 2000)).toBe(1500);
    // That finding (no uplink) is noted too, and expires: after the TTL a new default route is found.
    node.ip('route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'up9', 'onlink');
    expect(await detect(t0 + 3000)).toBe(1500);
    expect(await detect(t0 + 3000 + 10_001)).toBe(1400);
    // A note that is not one (corrupt, or from elsewhere) is ignored.
    fs.writeFileSync(path.join(dir, notes[0]), '{"index": "x"');
    node.ip('link', 'set', 'up9', 'mtu', '1300');
    expect(await detect(t0 + 3000 + 10_002)).toBe(1300);
  });
});
