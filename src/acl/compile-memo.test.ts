import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { parsePolicyText, type Resource } from './parse';
import { CompileMemo, compileRuleset, setMembership, type CompiledRuleset } from './compile';
import { toInput } from './state';
import type { Endpoint } from './model';

/**
 * A compile that borrows from the last one (CompileMemo, as the daemon
 * compiles) equals a compile from scratch, after any sequence of edits:
 * policies added, removed, their selectors, peers, ports, actions, order and
 * tier changed; pods added and relabelled; namespace labels and settings
 * changed. Unchanged records keep their objects, as the daemon's parsed
 * records do, so the memo is really used.
 */

const APPS = ['web', 'db', 'api', 'cache'];
const NODES = ['n0', 'n1'];

interface PolicyParams {
  kind: 0 | 1 | 2; // Kubernetes, Tern namespaced, Tern global
  ns: number;
  app: number;
  peer: number;
  port: number;
  action: 'Allow' | 'Deny' | 'Pass';
  order: number;
  tier: 'default' | 'security';
  egress: boolean;
  named: boolean;
  rules: number;
}

function policyYaml(name: string, p: PolicyParams): string {
  const ns = `ns${p.ns}`;
  if (p.kind === 0) {
    const ports = p.named ? `[{port: ${p.port}}, {port: http}]` : `[{port: ${p.port}}]`;
    return `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  podSelector: {matchLabels: {app: ${APPS[p.app]}}}\n  ingress:\n    - from: [{podSelector: {matchLabels: {app: ${APPS[p.peer]}}}}, {namespaceSelector: {matchLabels: {team: t${p.ns % 2}}}}]\n      ports: ${ports}\n${p.egress ? `  egress:\n    - to: [{podSelector: {matchLabels: {app: ${APPS[p.peer]}}}}]\n  policyTypes: [Ingress, Egress]\n` : ''}`;
  }
  const rule = (i: number) => `    - action: ${i ? 'Allow' : p.action}\n      protocol: TCP\n      source: {selector: app == "${APPS[(p.peer + i) % APPS.length]}"}\n      destination: {ports: [${p.port + i}${p.named ? ', http' : ''}]}\n`;
  const rules = Array.from({ length: p.rules }, (_, i) => rule(i)).join('');
  const meta = p.kind === 1 ? `{name: ${name}, namespace: ${ns}}` : `{name: ${p.tier === 'security' ? 'security.' : ''}${name}}`;
  return `apiVersion: tern.io/v1\nkind: ${p.kind === 1 ? 'NetworkPolicy' : 'GlobalNetworkPolicy'}\nmetadata: ${meta}\nspec:\n${p.kind === 2 ? `  tier: ${p.tier}\n` : ''}  order: ${p.order}\n  selector: app == "${APPS[p.app]}"\n  ingress:\n${rules}${p.egress ? `  egress:\n    - action: ${p.action}\n      destination: {selector: app == "${APPS[p.peer]}"}\n` : ''}`;
}

const policyArb: fc.Arbitrary<PolicyParams> = fc.record({
  kind: fc.constantFrom(0 as const, 1 as const, 2 as const),
  ns: fc.integer({ min: 0, max: 2 }),
  app: fc.integer({ min: 0, max: APPS.length - 1 }),
  peer: fc.integer({ min: 0, max: APPS.length - 1 }),
  port: fc.integer({ min: 80, max: 90 }),
  action: fc.constantFrom('Allow' as const, 'Deny' as const, 'Pass' as const),
  order: fc.integer({ min: 1, max: 5 }),
  tier: fc.constantFrom('default' as const, 'security' as const),
  egress: fc.boolean(),
  named: fc.boolean(),
  rules: fc.integer({ min: 1, max: 4 }),
});

function endpoint(i: number, app: number, node: number): Resource {
  const e: Endpoint = {
    name: `pod${i}`,
    namespace: `ns${i % 3}`,
    labels: { app: APPS[app] },
    ips: i % 4 ? [`10.9.0.${i}`] : [`10.9.0.${i}`, `fd00:9::${i.toString(16)}`],
    hostIface: `tern${i.toString(16).padStart(11, '0')}`,
    namedPorts: [{ name: 'http', protocol: 6, port: 8080 }],
    node: NODES[node],
  };
  return { kind: 'Endpoint', key: `${e.namespace}/${e.name}`, value: e };
}

type Edit =
  | { op: 'put'; name: number; p: PolicyParams }
  | { op: 'delete'; name: number }
  | { op: 'pod'; i: number; app: number; node: number }
  | { op: 'nsLabel'; ns: number; team: number }
  | { op: 'isolation'; on: boolean };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('put' as const), name: fc.integer({ min: 0, max: 7 }), p: policyArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), name: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('pod' as const), i: fc.integer({ min: 1, max: 30 }), app: fc.integer({ min: 0, max: APPS.length - 1 }), node: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('nsLabel' as const), ns: fc.integer({ min: 0, max: 2 }), team: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('isolation' as const), on: fc.boolean() }) },
);

const nsYaml = (ns: number, team: number) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ns${ns}, labels: {team: t${team}, tern.io/tenant: ten${ns % 2}}}\n`;
const one = (yaml: string) => parsePolicyText(yaml, 'x.yaml')[0];

/** Every set's membership function, applied to every endpoint. */
function memberships(rs: CompiledRuleset, eps: Endpoint[]) {
  return [rs.v4, rs.v6].map((f) => {
    const m = setMembership(f)!;
    return f.sets.map((s) => [s.name, eps.map((e) => m.get(s.name)?.(e) ?? null)]);
  });
}

describe('CompileMemo', () => {
  it('a compile with the memo equals one from scratch after random edits', () => {
    let reusedRuns = 0;
    fc.assert(
      fc.property(fc.array(policyArb, { minLength: 1, maxLength: 6 }), fc.array(editArb, { minLength: 1, maxLength: 15 }), (initial, edits) => {
        const records = new Map<string, Resource>();
        const put = (r: Resource) => records.set(`${r.kind}/${r.key}`, r);
        put(one(`apiVersion: tern.io/v1\nkind: Tier\nmetadata: {name: security}\nspec: {order: 10}\n`));
        for (let n = 0; n < 3; n++) put(one(nsYaml(n, n % 2)));
        for (let i = 1; i <= 20; i++) put(endpoint(i, i % APPS.length, i % 3 ? 1 : 0));
        const policyKeys = new Map<number, string>();
        const putPolicy = (name: number, p: PolicyParams) => {
          const old = policyKeys.get(name);
          if (old) records.delete(old);
          const r = one(policyYaml(`p${name}`, p));
          put(r);
          policyKeys.set(name, `${r.kind}/${r.key}`);
        };
        initial.forEach((p, i) => putPolicy(i, p));
        const memo = new CompileMemo();
        const check = () => {
          const all = [...records.values()];
          const withMemo = compileRuleset(toInput(all), { node: 'n0', memo });
          const scratch = compileRuleset(toInput(all), { node: 'n0' });
          expect(withMemo).toEqual(scratch);
          const eps = all.filter((r): r is Extract<Resource, { kind: 'Endpoint' }> => r.kind === 'Endpoint').map((r) => r.value);
          expect(memberships(withMemo, eps)).toEqual(memberships(scratch, eps));
        };
        check();
        for (const e of edits) {
          if (e.op === 'put') putPolicy(e.name, e.p);
          else if (e.op === 'delete') {
            const k = policyKeys.get(e.name);
            if (k) records.delete(k);
            policyKeys.delete(e.name);
          } else if (e.op === 'pod') put(endpoint(e.i, e.app, e.node));
          else if (e.op === 'nsLabel') put(one(nsYaml(e.ns, e.team)));
          else put(one(`apiVersion: tern.io/v1\nkind: ClusterSettings\nmetadata: {name: default}\nspec: {tenantIsolation: ${e.on}}\n`));
          check();
        }
        if (memo.reused) reusedRuns++;
      }),
      { numRuns: 150 },
    );
    expect(reusedRuns).toBeGreaterThan(50); // most runs had compiles that borrowed
  });

  it('an edited policy is rebuilt; the chains of the policies not edited are the very objects of the last compile', () => {
    const pol = (port: number) => one(policyYaml('edited', { kind: 1, ns: 0, app: 0, peer: 1, port, action: 'Allow', order: 1, tier: 'default', egress: false, named: false, rules: 3 }));
    const other = one(policyYaml('other', { kind: 2, ns: 0, app: 0, peer: 2, port: 81, action: 'Deny', order: 2, tier: 'default', egress: false, named: true, rules: 3 }));
    const eps = Array.from({ length: 6 }, (_, i) => endpoint(i * 3, 0, 0)); // app web, ns0, node n0
    const memo = new CompileMemo();
    const a = compileRuleset(toInput([pol(80), other, ...eps]), { node: 'n0', memo });
    const b = compileRuleset(toInput([pol(85), other, ...eps]), { node: 'n0', memo });
    expect(memo.reused).toBe(1);
    const chain = (rs: CompiledRuleset, prefix: string) => rs.v4.chains.filter((c) => c.name.startsWith(prefix));
    const [ea, oa] = [a, b].map((rs) => chain(rs, 'tern-pi-'));
    expect(ea.length).toBe(2);
    const same = oa.filter((c) => ea.includes(c));
    expect(same.length).toBe(1); // `other`'s chain, reused as it was
    expect(oa.find((c) => !ea.includes(c))!.rules.join('\n')).toContain('85');
  });
});
