import { describe, expect, it } from 'vitest';
import { compileRuleset, endpointSetName, type CompiledRuleset } from './compile';
import { IncrementalAcl, type StoredText } from './incremental';
import { resourceKey } from './store';
import type { Endpoint } from './model';
import { parsePolicyText, type Resource } from './parse';
import { toInput } from './state';

const POLICIES = parsePolicyText(
  `
apiVersion: tern.io/v1
kind: ClusterSettings
metadata: {name: default}
spec: {tenantIsolation: true}
---
apiVersion: tern.io/v1
kind: Tenant
metadata: {name: alpha}
spec: {namespaces: [alpha]}
---
apiVersion: v1
kind: Namespace
metadata: {name: beta, labels: {tern.io/tenant: beta}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: alpha}
spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{namespaceSelector: {matchLabels: {tern.io/tenant: beta}}}], ports: [{port: http}]}]}
---
apiVersion: tern.io/v1
kind: GlobalNetworkPolicy
metadata: {name: out}
spec:
  selector: app == "client"
  egress:
    - {action: Allow, protocol: TCP, destination: {selector: app == "web", ports: [http]}}
    - {action: Deny, destination: {nets: [10.9.0.0/16]}}
`,
  'p.yaml',
);

// The plans are made on node n0 for endpoints on n1 (which appear in sets only), unless said otherwise.
function ep(i: number, labels: Record<string, string> = { app: i % 2 ? 'web' : 'client' }, namespace = i % 3 ? 'alpha' : 'beta', node = 'n1'): Resource {
  const value: Endpoint = { node, name: `pod${i}`, namespace, labels, ips: [`10.1.0.${i}`, `fd00::${i.toString(16)}`], hostIface: `tern${i.toString(16).padStart(11, '0')}`, namedPorts: [{ name: 'http', protocol: 6, port: 8080 }] };
  return { kind: 'Endpoint', key: `${namespace}/pod${i}`, value };
}

/** Every set's members after running `lines` on the kernel `rs` describes. */
function run(rs: CompiledRuleset, lines: string[]): Map<string, Set<string>> {
  const sets = new Map([...rs.v4.sets, ...rs.v6.sets].map((s) => [s.name, new Set(s.members)]));
  for (const l of lines) {
    const [op, name, member] = l.split(' ');
    if (op === 'add') sets.get(name)!.add(member);
    else sets.get(name)!.delete(member);
  }
  return sets;
}
const stored = (rs: Resource[]): StoredText[] => rs.map((r) => ({ key: resourceKey(r), value: JSON.stringify(r) }));
const members = (rs: CompiledRuleset) => new Map([...rs.v4.sets, ...rs.v6.sets].map((s) => [s.name, new Set(s.members)]));
const isGate = (l: string) => l.split(' ')[1] === endpointSetName(4) || l.split(' ')[1] === endpointSetName(6);

describe('incremental path (pure)', () => {
  // Two of the pods are this node's: their chains name the selector sets the other pods join and leave.
  const base = [...POLICIES, ...Array.from({ length: 12 }, (_, i) => ep(i + 1, undefined, undefined, i + 1 === 1 || i + 1 === 3 ? 'n0' : 'n1'))];
  const start = () => {
    const incr = new IncrementalAcl('n0');
    const rs = compileRuleset(toInput(base), { node: 'n0' });
    incr.remember(stored(base), base, rs);
    return { incr, rs };
  };

  it('pods joining, leaving and relabelled: the lines turn the old sets into exactly what a full compile has', () => {
    const { incr, rs } = start();
    const next = [...base.filter((r) => r.key !== 'alpha/pod4' && r.key !== 'alpha/pod2'), ep(2, { app: 'web' }), ep(20), ep(21), ep(24)];
    const plan = incr.plan(stored(next))!;
    expect(plan).toBeDefined();
    expect({ joined: plan.joined, left: plan.left, changed: plan.changed }).toEqual({ joined: 3, left: 1, changed: 1 });
    const full = compileRuleset(toInput(next), { node: 'n0' });
    expect(full.v4.chains).toEqual(rs.v4.chains);
    expect(full.v6.chains).toEqual(rs.v6.chains);
    expect(run(rs, plan.lines)).toEqual(members(full));
  });

  it('a join opens the gate last, a leave closes it first', () => {
    const { incr } = start();
    const join = incr.plan(stored([...base, ep(30)]))!.lines;
    const firstGate = join.findIndex(isGate);
    expect(firstGate).toBeGreaterThan(0);
    expect(join.slice(firstGate).every((l) => isGate(l) && l.startsWith('add '))).toBe(true);
    const leave = incr.plan(stored(base.filter((r) => r.key !== 'alpha/pod5')))!.lines;
    const lastGate = leave.map(isGate).lastIndexOf(true);
    expect(lastGate).toBeGreaterThanOrEqual(1); // both families' gate entries
    expect(leave.slice(0, lastGate + 1).every((l) => isGate(l) && l.startsWith('del '))).toBe(true);
    expect(leave.length).toBeGreaterThan(lastGate + 1);
  });

  it('successive plans build on each other once committed', () => {
    const { incr, rs } = start();
    let cur = base;
    let lines: string[] = [];
    for (const change of [(r: Resource[]) => [...r, ep(40)], (r: Resource[]) => r.filter((x) => x.key !== 'beta/pod6'), (r: Resource[]) => [...r, ep(41, { app: 'client' }, 'alpha')]]) {
      cur = change(cur);
      const p = incr.plan(stored(cur))!;
      incr.commit(p);
      lines = [...lines, ...p.lines];
    }
    expect(run(rs, lines)).toEqual(members(compileRuleset(toInput(cur), { node: 'n0' })));
    expect(incr.plan(stored(cur))!.lines).toEqual([]);
  });

  it('anything but endpoints, a shared address, or a new tenant under isolation needs the full compile', () => {
    const { incr } = start();
    expect(incr.plan(stored([...base, ...parsePolicyText('apiVersion: v1\nkind: Namespace\nmetadata: {name: gamma}\n', 'n.yaml')]))).toBeUndefined();
    expect(incr.plan(stored(base.filter((r) => r.kind !== 'Policy' || r.value.name !== 'out')))).toBeUndefined();
    const dup = ep(50);
    (dup.value as Endpoint).ips = ['10.1.0.3'];
    expect(incr.plan(stored([...base, dup]))).toBeUndefined();
    expect(incr.plan(stored([...base, ep(51, { app: 'web', 'tern.io/tenant': 'gamma' }, 'gamma')]))).toBeUndefined();
    // A pod of a tenant that already has rules is fine.
    expect(incr.plan(stored([...base, ep(52, { app: 'web', 'tern.io/tenant': 'beta' }, 'gamma')]))).toBeDefined();
    expect(new IncrementalAcl('n0').plan(stored(base))).toBeUndefined();
  });

  it("this node's pods: full compile when a policy selects them or they have a tenant (their own chains), incremental otherwise", () => {
    const { incr } = start();
    expect(incr.plan(stored([...base, ep(60, { app: 'web' }, 'alpha', 'n0')]))).toBeUndefined(); // selected by web
    expect(incr.plan(stored([...base, ep(61, { app: 'none' }, 'alpha', 'n0')]))).toBeUndefined(); // tenant alpha
    expect(incr.plan(stored([...base, ep(62, { app: 'none' }, 'loose', 'n0')]))?.joined).toBe(1);
    // An endpoint with no node recorded counts as this node's.
    const noNode = ep(63, { app: 'web' });
    delete (noNode.value as Endpoint).node;
    expect(incr.plan(stored([...base, noNode]))).toBeUndefined();
    // Without a node name every endpoint is local.
    const anyNode = new IncrementalAcl();
    const rs = compileRuleset(toInput(base));
    anyNode.remember(stored(base), base, rs);
    expect(anyNode.plan(stored([...base, ep(64, { app: 'web' })]))).toBeUndefined();
  });

  it('planChanges, given only the records that changed, plans what plan does from the whole list', () => {
    const { incr } = start();
    const next = [...base.filter((r) => r.key !== 'alpha/pod4'), ep(2, { app: 'web' }), ep(20)];
    const key = (r: Resource) => stored([r])[0];
    const changes = new Map<string, string | undefined>([
      [key(ep(2, { app: 'web' })).key, key(ep(2, { app: 'web' })).value],
      [key(ep(20)).key, key(ep(20)).value],
      [key(ep(4)).key, undefined],
      [key(ep(5)).key, key(ep(5)).value], // reported, but equal to what is remembered
      [key(ep(99)).key, undefined], // created and deleted again in between
    ]);
    const p = incr.planChanges(changes)!;
    expect(p.lines).toEqual(incr.plan(stored(next))!.lines);
    expect({ joined: p.joined, left: p.left, changed: p.changed }).toEqual({ joined: 1, left: 1, changed: 1 });
    expect(incr.planChanges(new Map())!.lines).toEqual([]);
  });

  it('planChanges: a policy or namespace among the changes, gone or changed, needs the full compile', () => {
    const { incr } = start();
    const policy = stored(POLICIES.filter((r) => r.kind === 'Policy'))[0];
    expect(incr.planChanges(new Map([[policy.key, undefined]]))).toBeUndefined();
    expect(incr.planChanges(new Map([[policy.key, policy.value.replace('"http"', '"https"')]]))).toBeUndefined();
    expect(incr.planChanges(new Map([[policy.key, policy.value]]))!.lines).toEqual([]); // unchanged
    expect(new IncrementalAcl('n0').planChanges(new Map())).toBeUndefined();
  });
});
