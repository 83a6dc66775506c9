import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parsePolicyText, type Resource } from './parse';
import { compileRuleset, shortHash, NFT_MAX_LEVEL, OVERLAY_IFACE, VLAN_BRIDGES, type FamilyRuleset } from './compile';
import { explainPacket } from './explain';
import { VTEP_NAME } from '../overlay/plan';
import { vlanNames } from '../overlay/vlan-plan';
import { simulate, type SimPacket } from './simulate';
import { toInput } from './state';
import type { Endpoint } from './model';

const GOLDEN = path.join(__dirname, '__golden__');
const PACKETS = [
  { protocol: 6, dstPort: 80 },
  { protocol: 6, dstPort: 443 },
  { protocol: 6, dstPort: 5432 },
  { protocol: 6, dstPort: 5433 },
  { protocol: 6, dstPort: 6005 },
  { protocol: 6, dstPort: 6007 },
  { protocol: 6, dstPort: 8080 },
  { protocol: 17, dstPort: 5005 },
  { protocol: 17, dstPort: 53 },
  { protocol: 132, dstPort: 9 },
  { protocol: 1, icmpType: 8, icmpCode: 0 },
  { protocol: 1, icmpType: 0, icmpCode: 0 },
];

describe('compiled chains agree with explain on every pod pair and packet', () => {
  for (const f of fs.readdirSync(GOLDEN).filter((x) => x.endsWith('.yaml'))) {
    it(f, () => {
      const input = toInput(parsePolicyText(fs.readFileSync(path.join(GOLDEN, f), 'utf8'), f));
      const rs = compileRuleset(input);
      let checked = 0;
      for (const a of input.endpoints)
        for (const b of input.endpoints) {
          if (a === b) continue;
          for (const p of PACKETS) {
            const src = a.ips.find((x) => !x.includes(':'))!.split('/')[0];
            const dst = b.ips.find((x) => !x.includes(':'))!.split('/')[0];
            const sim = simulate(rs.v4, 'FORWARD', { src, dst, inIface: a.hostIface, outIface: b.hostIface, ...p });
            const ex = explainPacket(input, { src, dst, protocol: p.protocol, dstPort: p.dstPort, icmp: p.icmpType === undefined ? undefined : { type: p.icmpType, code: p.icmpCode! } });
            expect(`${a.name}->${b.name} ${JSON.stringify(p)} ${sim.verdict}`).toBe(`${a.name}->${b.name} ${JSON.stringify(p)} ${ex.verdict === 'allow' ? 'accept' : 'drop'}`);
            checked++;
          }
        }
      expect(checked).toBeGreaterThan(20);
    });
  }

  it('fails closed and stops spoofed sources', () => {
    const input = toInput(parsePolicyText(fs.readFileSync(path.join(GOLDEN, 'k8s-basic.yaml'), 'utf8'), 'k'));
    const rs = compileRuleset(input);
    expect(simulate(rs.v4, 'FORWARD', { src: '10.0.0.11', dst: '10.0.0.10', inIface: 'tern9999999999', outIface: 'tern0000000000a', protocol: 6, dstPort: 80 }).verdict).toBe('drop');
    expect(simulate(rs.v4, 'FORWARD', { src: '10.0.0.99', dst: '10.0.0.10', inIface: 'tern0000000000b', outIface: 'tern0000000000a', protocol: 6, dstPort: 80 }).verdict).toBe('drop');
    expect(simulate(rs.v4, 'INPUT', { src: '10.0.0.10', dst: '192.0.2.1', inIface: 'tern0000000000a', protocol: 6, dstPort: 22 }).verdict).toBe('accept');
  });

  it('the VXLAN VTEP and the VLAN bridges are no workloads: remote and VLAN pods pass their side, the local side is still judged', () => {
    expect(OVERLAY_IFACE).toBe(VTEP_NAME);
    expect(vlanNames({ pool: { vlanId: 100, parent: 'eth1' } as never, containerId: 'c', ifName: 'eth0' }).bridge.startsWith(VLAN_BRIDGES.slice(0, -1))).toBe(true);
    const all = parsePolicyText(fs.readFileSync(path.join(GOLDEN, 'k8s-basic.yaml'), 'utf8'), 'k');
    const withPolicy = compileRuleset(toInput(all)).v4;
    const endpointsOnly = compileRuleset(toInput(all.filter((r) => r.kind === 'Endpoint'))).v4;
    const remoteTo = (dst: string, outIface: string): SimPacket => ({ src: '10.9.9.9', dst, inIface: VTEP_NAME, outIface, protocol: 6, dstPort: 80 });
    const toRemote = (src: string, inIface: string): SimPacket => ({ src, dst: '10.9.9.9', inIface, outIface: VTEP_NAME, protocol: 6, dstPort: 80 });
    const cases: [string, typeof withPolicy, SimPacket, 'FORWARD' | 'INPUT', 'accept' | 'drop'][] = [
      ['remote pod -> local pod, no policy', endpointsOnly, remoteTo('10.0.0.11', 'tern0000000000b'), 'FORWARD', 'accept'],
      ['remote pod -> local pod whose policy allows it (ipBlock)', withPolicy, remoteTo('10.0.0.10', 'tern0000000000a'), 'FORWARD', 'accept'],
      ['remote pod -> local pod under deny-all', withPolicy, remoteTo('10.0.0.11', 'tern0000000000b'), 'FORWARD', 'drop'],
      ['remote pod -> an unknown local interface', endpointsOnly, remoteTo('10.0.0.11', 'tern9999999999'), 'FORWARD', 'drop'],
      ['local pod -> remote pod, no policy', endpointsOnly, toRemote('10.0.0.11', 'tern0000000000b'), 'FORWARD', 'accept'],
      ['local pod under deny-all -> remote pod', withPolicy, toRemote('10.0.0.11', 'tern0000000000b'), 'FORWARD', 'drop'],
      ['local pod, forged source -> remote pod', endpointsOnly, toRemote('10.0.0.99', 'tern0000000000b'), 'FORWARD', 'drop'],
      ['VLAN pod (bridged) -> its router', withPolicy, { src: '10.100.0.5', dst: '10.100.0.1', inIface: 'ternbr100', outIface: 'ternbr100', protocol: 6, dstPort: 80 }, 'FORWARD', 'accept'],
      ['VLAN pod -> this node', withPolicy, { src: '10.100.0.5', dst: '192.0.2.1', inIface: 'ternbr100', protocol: 6, dstPort: 8080 }, 'INPUT', 'accept'],
      ['remote pod -> this node', withPolicy, { src: '10.9.9.9', dst: '192.0.2.1', inIface: VTEP_NAME, protocol: 6, dstPort: 8080 }, 'INPUT', 'accept'],
    ];
    for (const [name, rs, pkt, hook, want] of cases) expect(simulate(rs, hook, pkt).verdict, name).toBe(want);
  });
});

describe('rules traversed per packet', () => {
  const policies = parsePolicyText(fs.readFileSync(path.join(GOLDEN, 'tern-tiers.yaml'), 'utf8'), 't').filter((r) => r.kind !== 'Endpoint');
  const pods = (n: number): Resource[] =>
    Array.from({ length: n }, (_, i) => {
      const e: Endpoint = { name: `p${i}`, namespace: i % 2 ? 'red' : 'blue', labels: { role: i % 3 ? 'app' : 'db' }, ips: [`10.8.${i >> 8}.${i & 255}`], hostIface: `tern${String(i).padStart(11, '0')}`, namedPorts: [] };
      return { kind: 'Endpoint', key: `${e.namespace}/${e.name}`, value: e };
    });
  const count = (rs: ReturnType<typeof compileRuleset>) =>
    simulate(rs.v4, 'FORWARD', { src: '10.8.0.1', dst: '10.8.0.3', inIface: 'tern00000000001', outIface: 'tern00000000003', protocol: 6, dstPort: 5432 }).rulesTraversed;
  /** Policies that select none of the pods above (another namespace), each with an ingress and an egress rule. */
  const unrelated = (n: number): Resource[] =>
    parsePolicyText(
      Array.from({ length: n }, (_, i) => `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: u${i}, namespace: other}\nspec:\n  selector: app == "u${i}"\n  ingress: [{action: Allow, protocol: TCP, destination: {ports: [${1000 + i}]}}]\n  egress: [{action: Allow}]\n`).join(''),
      'u',
    );
  it('does not grow with unrelated policies', () => {
    const counts = [0, 10, 300].map((n) => count(compileRuleset(toInput([...policies, ...unrelated(n), ...pods(100)]))));
    expect(counts[0]).toBeGreaterThan(5);
    expect(new Set(counts).size).toBe(1);
  });
  it('grows with the pod count only by the interface dispatch, one rule per bit of the device-group tree', () => {
    const counts = [10, 100, 2000].map((n) => count(compileRuleset(toInput([...policies, ...pods(n)]))));
    // A balanced binary tree: 10x the pods is about 3.3 levels more in each direction, one rule each
    // (a tree over the names' hex digits scanned up to 16 rules per level).
    expect(counts[1] - counts[0]).toBeLessThanOrEqual(2 * 6);
    expect(counts[2] - counts[1]).toBeLessThanOrEqual(2 * 8);
    expect(counts[2]).toBeLessThan(70);
  });
});

describe('interface dispatch by device group', () => {
  // The layout of test/acl/rule-count.test.ts: two probe pods selected by five policies each way (and one more egress-only), 40 more local pods
  // with one policy each; the veth names are hashes, so every run (sandbox prefix) puts them elsewhere in the tree.
  const OTHER = 40;
  const probePolicies = parsePolicyText(
    `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: probe-out, namespace: probe}\nspec:\n  order: 9999\n  selector: role == "probe"\n  types: [Egress]\n  egress: [{action: Allow, protocol: TCP, destination: {ports: [7300]}}]\n` +
      Array.from({ length: 5 }, (_, k) => `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: probe${k}, namespace: probe}\nspec:\n  order: ${10000 + k}\n  selector: role == "probe"\n  ingress: [{action: Allow, protocol: TCP, source: {selector: role == "probe"}, destination: {ports: [${k === 4 ? 7000 : 7100 + k}]}}]\n  egress: [{action: Allow, protocol: TCP, destination: {ports: [${k === 4 ? 7000 : 7100 + k}]}}]\n`).join('') +
      Array.from({ length: OTHER }, (_, i) => `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: u${i}, namespace: other}\nspec:\n  order: ${i}\n  selector: app == "o${i}"\n  ingress: [{action: Allow, protocol: TCP, source: {selector: app == "o${(i + 1) % OTHER}"}, destination: {ports: [${1000 + i}]}}]\n  egress: [{action: Deny, protocol: UDP}]\n`).join(''),
    'p.yaml',
  );
  const layout = (seed: string) => {
    const veth = (n: string) => `tern${shortHash(`${seed}/${n}`, 11)}`;
    const ep = (name: string, namespace: string, labels: Record<string, string>, ip: string): Resource => ({ kind: 'Endpoint', key: `${namespace}/${name}`, value: { name, namespace, labels, ips: [ip], hostIface: veth(name), namedPorts: [] } as Endpoint });
    const eps = [ep('src', 'probe', { role: 'probe' }, '10.66.1.10'), ep('dst', 'probe', { role: 'probe' }, '10.66.1.20'), ...Array.from({ length: OTHER }, (_, i) => ep(`o${i}`, 'other', { app: `o${i}` }, `10.66.9.${i + 1}`))];
    const rs = compileRuleset(toInput([...eps, ...probePolicies]));
    const syn = (port: number, groups: Partial<SimPacket> = {}) => simulate(rs.v4, 'FORWARD', { src: '10.66.1.10', dst: '10.66.1.20', inIface: veth('src'), outIface: veth('dst'), protocol: 6, dstPort: port, ...groups });
    return { syn };
  };
  it('a SYN between two pods selected by five policies each way crosses at most 50 rules, wherever their veths fall (300 layouts)', () => {
    const counts: number[] = [];
    for (let r = 0; r < 300; r++) {
      const { syn } = layout(`run${r}`);
      const ok = syn(7000);
      expect(ok.verdict).toBe('accept');
      expect(syn(7200).verdict).toBe('drop');
      expect(syn(7300).verdict).toBe('drop');
      counts.push(ok.rulesTraversed);
    }
    // With the hex-digit tree alone this ranged from 31 to 65 over the same kind of layouts, above 50 in about a quarter.
    expect(Math.max(...counts)).toBeLessThanOrEqual(50);
  });
  it('a veth whose group is not its name\'s (an older version made it, or an operator changed it) meets the same policies: fail closed', () => {
    for (let r = 0; r < 100; r++) {
      const { syn } = layout(`run${r}`);
      for (const groups of [{ inGroup: 0, outGroup: 0 }, { inGroup: 0x7effffff }, { outGroup: (r * 2654435761) >>> 0 }]) {
        expect(syn(7000, groups).verdict).toBe('accept');
        expect(syn(7200, groups).verdict).toBe('drop');
        expect(syn(7300, groups).verdict).toBe('drop'); // allowed out, not in: the destination's chain was reached
      }
    }
  });
});

describe('chain nesting stays within nf_tables\' limit', () => {
  /** Levels from a hook's chain (level 0, as nf_tables counts) to the deepest chain any path reaches. */
  const maxLevel = (fam: FamilyRuleset): number => {
    const chains = new Map(fam.chains.map((c) => [c.name, c.rules]));
    const memo = new Map<string, number>();
    const below = (name: string): number => {
      if (memo.has(name)) return memo.get(name)!;
      const targets = (chains.get(name) ?? []).map((r) => /-[jg] (\S+)/.exec(r)?.[1]).filter((t): t is string => !!t && chains.has(t));
      const v = 1 + Math.max(0, ...targets.map(below));
      memo.set(name, v);
      return v;
    };
    return Math.max(...[...chains.keys()].filter((n) => /^tern-(FORWARD|INPUT)$/.test(n)).map(below));
  };
  const policies = parsePolicyText(fs.readFileSync(path.join(GOLDEN, 'tern-tiers.yaml'), 'utf8'), 't').filter((r) => r.kind !== 'Endpoint');
  const everyPod = parsePolicyText(`---\napiVersion: tern.io/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: all}\nspec:\n  selector: all()\n  ingress: [{action: Allow, protocol: TCP, destination: {ports: [80, 443, 8080]}}, {action: Pass, protocol: UDP}]\n  egress: [{action: Allow, protocol: TCP, destination: {ports: [53]}}, {action: Pass}, {action: Deny, protocol: UDP}]\n`, 'g');
  for (const naming of ['hashed', 'sequential'] as const) {
    it(`${naming} veth names, 5 to 5,000 local pods: at most ${NFT_MAX_LEVEL} levels`, () => {
      for (const n of [5, 42, 300, 3000, 5000]) {
        const eps: Resource[] = Array.from({ length: n }, (_, i) => {
          const hostIface = naming === 'hashed' ? `tern${shortHash(`n${n}/${i}`, 11)}` : `tern${String(i).padStart(11, '0')}`;
          const e: Endpoint = { name: `p${i}`, namespace: i % 2 ? 'red' : 'blue', labels: { role: i % 3 ? 'app' : 'db' }, ips: [`10.8.${i >> 8}.${i & 255}`], hostIface, namedPorts: [] };
          return { kind: 'Endpoint', key: `${e.namespace}/${e.name}`, value: e };
        });
        const rs = compileRuleset(toInput([...policies, ...everyPod, ...eps]));
        // FORWARD is level 0, so tern-FORWARD's subtree may be NFT_MAX_LEVEL chains deep.
        expect(maxLevel(rs.v4), `${n} pods`).toBeLessThanOrEqual(NFT_MAX_LEVEL);
      }
    });
  }
});
