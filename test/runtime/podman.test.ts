import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, sh, type Netns } from '../sandbox';
import { listAllocations, makeNode, ternConfig } from '../sandbox/cni';

// podman and runc come from scripts/setup.sh, which npm test runs first.
describe('a real runtime: podman with the CNI backend attaches containers through tern', () => {
  const sb = new Sandbox('podman');
  let node: Netns;
  let dir: string;
  beforeAll(() => {
    ({ node } = makeNode(sb, 'node'));
    dir = sb.tmpdir();
  });
  afterAll(() => sb.cleanup());

  it('a container reaches another one over ICMP and TCP, and both are released', async () => {
    const r = sh('nsenter', [`--net=${node.path}`, '--', 'unshare', '--mount', '--propagation', 'private', path.join(__dirname, 'podman-run.sh'), dir, DIST_BIN], {
      timeoutMs: 240_000,
    });
    const out = r.stdout;
    expect(r.code, out + r.stderr).toBe(0);
    const srv = /SERVER_IP=(\S+)/.exec(out)?.[1];
    expect(srv).toMatch(/^10\.244\.\d+\.\d+$/);
    expect(out).toMatch(/CLIENT_ADDR=10\.244\.\d+\.\d+\/32/);
    expect(out).toContain('CLIENT_ROUTE=default via 169.254.1.1 dev eth0');
    expect(out).toContain('PING=ok');
    expect(out).toContain('FETCH=tern-hello');
    expect(out).toContain('LEFT_CONTAINERS=0');
    // podman called DEL for both: no allocation and no host veth remain.
    expect(await listAllocations(ternConfig(dir))).toEqual([]);
    expect(node.ipJson('link', 'show').filter((l: any) => l.ifname.startsWith('tern'))).toEqual([]);
  }, 300_000);
});
