import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_BIN, REPO, Sandbox, type Netns } from '../sandbox';
import { makeNode, runCni, ternConfig } from '../sandbox/cni';

/**
 * The plugin as the README installs it: the shim copied into a CNI bin
 * directory, tern-standalone and tern-ipam symlinked to the checkout. The
 * CNI binaries load one bundled file (dist/bundle) through a V8 code cache,
 * so the launcher must find the bundle through the symlink, and the bundle
 * must find the native addons (netlink's, better-sqlite3's, Tern's own) from
 * where it is.
 */
describe('CNI binaries installed by copy and symlink', () => {
  const sb = new Sandbox('cnilay');
  let node: Netns;
  let pod: Netns;
  let bin: string;
  let conf: Record<string, any>;

  beforeAll(() => {
    ({ node } = makeNode(sb, 'node'));
    pod = sb.netns('pod');
    const dir = sb.tmpdir();
    bin = path.join(dir, 'opt-cni-bin');
    fs.mkdirSync(bin);
    fs.copyFileSync(path.join(DIST_BIN, 'tern'), path.join(bin, 'tern'));
    fs.chmodSync(path.join(bin, 'tern'), 0o755);
    for (const b of ['tern-standalone', 'tern-ipam']) fs.symlinkSync(path.join(DIST_BIN, b), path.join(bin, b));
    conf = ternConfig(dir);
  });
  afterAll(() => sb.cleanup());

  it('ADD, CHECK and DEL work through the installed copy, twice (the second start from the code cache)', async () => {
    for (const id of ['lay-1', 'lay-2']) {
      const call = { containerId: id, netns: pod.path, ifname: 'eth0', config: conf, plugin: path.join(bin, 'tern'), path: bin };
      const add = await runCni(node, { ...call, command: 'ADD' });
      expect(add.code, add.stdout + add.stderr).toBe(0);
      expect(add.json.ips.map((i: { address: string }) => i.address)).toEqual([expect.stringMatching(/^10\.244\.\d+\.\d+\/32$/), expect.stringMatching(/^fd00:10:244:/)]);
      expect(pod.ip('-4', 'addr', 'show', 'eth0')).toContain(add.json.ips[0].address);
      const check = await runCni(node, { ...call, command: 'CHECK', config: { ...conf, prevResult: add.json } });
      expect(check.code, check.stdout + check.stderr).toBe(0);
      const del = await runCni(node, { ...call, command: 'DEL' });
      expect(del.code, del.stdout + del.stderr).toBe(0);
      expect(pod.ip('link', 'show')).not.toContain('eth0');
    }
    // The ADDs left a cache beside the bundle, named by its content hash.
    const caches = fs.readdirSync(path.join(REPO, 'dist', 'bundle')).filter((f) => f.startsWith('tern-standalone.cjs.') && f.endsWith('.v8cache'));
    expect(caches.length).toBeGreaterThan(0);
  });

  it('tern-ipam runs through its symlink (VERSION)', async () => {
    const r = await runCni(node, { command: 'VERSION', config: '', plugin: path.join(bin, 'tern-ipam'), path: bin });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.supportedVersions).toContain('1.0.0');
  });
});
