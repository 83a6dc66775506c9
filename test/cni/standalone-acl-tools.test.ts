import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Sandbox, type Netns } from '../sandbox';
import { makeNode, runCni, ternConfig } from '../sandbox/cni';

/**
 * Which kernel tools a standalone ADD and DEL run for the ACL (the anti-
 * spoofing gate is in force from the first pod). Wrappers ahead on PATH log
 * every iptables and ipset run. After the first ADD, a process that finds
 * the nf_tables generation of Tern's own last commit trusts the recorded
 * rules and changes the gate's members over netlink: no process at all.
 */
const TOOLS = ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save', 'iptables-nft-restore', 'ip6tables-nft-restore', 'iptables-legacy-restore', 'ip6tables-legacy-restore', 'ipset'];

describe('standalone CNI ADD/DEL: ACL tool runs', () => {
  const sb = new Sandbox('cnitools');
  let node: Netns;
  let dir: string;
  let conf: Record<string, any>;
  let log: string;
  let shimPath: string;
  const pods: Record<string, Netns> = {};
  const ips: Record<string, string> = {};

  const cni = async (command: 'ADD' | 'DEL', name: string) => {
    pods[name] ??= sb.netns(name);
    const r = await runCni(node, { command, containerId: `ctr-${name}`, netns: pods[name].path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=ns;K8S_POD_NAME=${name}`, config: conf, extraEnv: { PATH: shimPath } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    if (command === 'ADD') ips[name] = r.json.ips[0].address.split('/')[0];
  };
  /** The tool runs logged since the last call. */
  const runs = (): string[] => {
    const l = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
    fs.rmSync(log, { force: true });
    return l;
  };
  const gate = () => node.must('ipset', ['save', 'tern-ep4']);

  beforeAll(async () => {
    ({ node } = makeNode(sb, 'node'));
    dir = sb.tmpdir();
    conf = ternConfig(dir, { ipam: { type: 'tern-ipam', pools: ['10.244.0.0/16'] }, log_level: 'warn' });
    log = path.join(dir, 'tools.log');
    const shims = path.join(dir, 'shims');
    fs.mkdirSync(shims);
    for (const t of TOOLS) fs.writeFileSync(path.join(shims, t), `#!/bin/sh\necho "${t} $*" >> ${log}\nexec /usr/sbin/${t} "$@"\n`, { mode: 0o755 });
    shimPath = `${shims}:${process.env.PATH}`;
    await cni('ADD', 'a');
    // The first sync on a node detects the backend and reads the rules.
    expect(runs().filter((l) => l.includes('-save')).length).toBeGreaterThanOrEqual(4);
  }, 120_000);
  afterAll(() => sb.cleanup());

  it('a later ADD and DEL run no iptables or ipset process, and the gate follows', async () => {
    await cni('ADD', 'b');
    expect(runs()).toEqual([]);
    expect(gate()).toContain(`add tern-ep4 ${ips.b},`);
    await cni('DEL', 'b');
    expect(runs()).toEqual([]);
    expect(gate()).not.toContain(`${ips.b},`);
    expect(gate()).toContain(`add tern-ep4 ${ips.a},`);
  });

  it('after a foreign commit the next ADD reads the rules again (and puts back what was taken)', async () => {
    node.must('iptables-nft', ['-D', 'FORWARD', '-m', 'comment', '--comment', 'tern:hook', '-j', 'tern-FORWARD']);
    await cni('ADD', 'c');
    const l = runs();
    expect(l.filter((x) => x.startsWith('iptables-nft-save'))).not.toEqual([]);
    expect(l.filter((x) => x.startsWith('iptables-nft-restore'))).not.toEqual([]);
    expect(node.must('iptables-nft-save', ['-t', 'filter'])).toContain('-A FORWARD -m comment --comment "tern:hook" -j tern-FORWARD');
    expect(gate()).toContain(`add tern-ep4 ${ips.c},`);
    await cni('DEL', 'c');
    expect(runs()).toEqual([]);
  });

  it('the last DEL on the node asks the kernel over netlink whether rules are programmed', async () => {
    await cni('DEL', 'a');
    expect(runs()).toEqual([]);
    expect(gate()).not.toContain(`${ips.a},`);
  });
});
