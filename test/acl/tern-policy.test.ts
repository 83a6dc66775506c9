/**
 * Tern (Calico v3 style) policies, tiers and tenant isolation across three
 * tenants, plus the dynamic cases: label changes, policy updates, fail closed,
 * anti-spoofing, failsafe ports, failed applies, IPv6. Real packets throughout;
 * each flow is also checked against `explain`.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { Sandbox } from '../sandbox';
import { compileRuleset, parsePolicyText, toInput } from '../../src/acl';
import { AclTopology, settingsDoc, type Flow } from './topology';

const sb = new Sandbox('atern');
// Each case applies rules and sends real packets; a loaded 2-core CI box needs room.
vi.setConfig({ testTimeout: 180_000 });
let t: AclTopology;

const gnp = (name: string, spec: string) => `---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: ${name}}\nspec:\n${spec.replace(/^/gm, '  ')}\n`;
const tnp = (name: string, ns: string, spec: string) => `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n${spec.replace(/^/gm, '  ')}\n`;
const tier = (name: string, order: number, extra = '') => `---\napiVersion: tern.io/v1\nkind: Tier\nmetadata: {name: ${name}}\nspec: {order: ${order}${extra}}\n`;

const BASE = `
apiVersion: v1
kind: Namespace
metadata: {name: a1, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: a2, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: b1, labels: {team: b}}
---
apiVersion: v1
kind: Namespace
metadata: {name: c1, labels: {team: c, tern.io/tenant: c}}
---
apiVersion: tern.io/v1
kind: Tenant
metadata: {name: a}
spec: {namespaces: [a1, a2]}
---
apiVersion: tern.io/v1
kind: Tenant
metadata: {name: b}
spec: {namespaces: [b1]}
`;

beforeAll(async () => {
  t = await AclTopology.create(sb, [
    { name: 'a1web', namespace: 'a1', labels: { app: 'web' }, v4: '10.65.1.10', v6: 'fd65::1:10', namedPorts: [{ name: 'web-alt', protocol: 6, port: 8080 }] },
    { name: 'a1db', namespace: 'a1', labels: { app: 'db', tier: 'back' }, v4: '10.65.1.20', v6: 'fd65::1:20' },
    { name: 'a2cli', namespace: 'a2', labels: { app: 'client' }, v4: '10.65.1.30', v6: 'fd65::1:30' },
    { name: 'b1web', namespace: 'b1', labels: { app: 'web' }, v4: '10.65.2.10' },
    { name: 'b1cli', namespace: 'b1', labels: { app: 'client' }, v4: '10.65.2.30' },
    { name: 'c1cli', namespace: 'c1', labels: { app: 'client' }, v4: '10.65.3.30' },
  ]);
  t.base = parsePolicyText(BASE, 'base.yaml');
}, 120_000);

afterAll(async () => {
  await t?.dispose();
  await sb.cleanup();
});

async function expectFlows(yaml: string, flows: Flow[]): Promise<void> {
  await t.apply(yaml);
  const bad = await t.check(flows);
  if (bad.length && process.env.ACL_DEBUG) console.log([...t.pods.values()].map((p) => `${p.spec.name} exit=${p.server.child.exitCode} sig=${p.server.child.signalCode} out=${p.server.output().slice(-300)}`).join('\n'));
  expect(bad).toEqual([]);
}

/** The Tern chains as the kernel has them, without counters. */
async function ternRules(): Promise<string> {
  return (await t.applier.save(4))
    .split('\n')
    .filter((l) => l.includes('tern'))
    .join('\n');
}
function ipsets(): string {
  return t.node.must('ipset', ['save']).split('\n').sort().join('\n');
}

describe('Tern policies on real packets', () => {
  it('Calico selector grammar: in, !=, Deny then Allow', async () => {
    await expectFlows(gnp('sel', 'selector: app in {"web", "db"} && tier != "front"\ningress:\n  - {action: Deny, protocol: ICMP}\n  - {action: Allow}'), [
      ['a2cli', 'a1web', 'icmp', false], // a1web lacks "tier": != matches
      ['a2cli', 'a1web', 'tcp/80', true],
      ['a2cli', 'a1db', 'icmp', false],
      ['a2cli', 'b1cli', 'icmp', true], // not selected
    ]);
  });

  it('Calico types default: a policy with only egress rules isolates egress only', async () => {
    await expectFlows(
      tnp('db-out', 'a1', 'selector: app == "db"\negress: [{action: Allow, protocol: TCP, destination: {ports: [443]}}]') + gnp('cli-out', 'selector: app == "client"\negress: [{action: Allow, protocol: UDP}]'),
      [
        ['a1web', 'a1db', 'tcp/5432', true], // ingress is not isolated by an egress-only policy
        ['a1db', 'a1web', 'tcp/443', true],
        ['a1db', 'a1web', 'tcp/80', false],
        ['a1web', 'a2cli', 'tcp/80', true],
        ['a2cli', 'a1web', 'udp/53', true],
        ['a2cli', 'a1web', 'tcp/80', false],
      ],
    );
  });

  it('`not in` and `!has()` match endpoints lacking the key', async () => {
    await expectFlows(gnp('notin', 'selector: tier not in {"back"} && !has(quarantine)\ningress:\n  - action: Deny\n    protocol: TCP\n    destination: {ports: [443]}\n  - action: Allow'), [
      ['a2cli', 'a1web', 'tcp/443', false],
      ['a2cli', 'a1db', 'tcp/443', true], // tier=back: not selected
      ['a2cli', 'a1web', 'tcp/80', true],
    ]);
  });

  it('order decides between policies, and changing it takes effect', async () => {
    const pols = (denyOrder: number, allowOrder: number) =>
      gnp('deny80', `order: ${denyOrder}\nselector: app == "web"\ningress:\n  - action: Deny\n    protocol: TCP\n    destination: {ports: [80]}`) +
      gnp('allowall', `order: ${allowOrder}\nselector: app == "web"\ningress:\n  - action: Allow`);
    await expectFlows(pols(10, 5), [['a2cli', 'a1web', 'tcp/80', true]]);
    await expectFlows(pols(5, 10), [
      ['a2cli', 'a1web', 'tcp/80', false],
      ['a2cli', 'a1web', 'tcp/443', true],
    ]);
  });

  it('tiers: Pass goes to the next tier, end-of-tier deny for selected endpoints', async () => {
    await expectFlows(
      tier('sec', 10) +
        gnp('sec.web', 'tier: sec\nselector: app == "web"\ningress:\n  - action: Pass\n    protocol: TCP\n    destination: {ports: [80]}') +
        gnp('web-from-clients', 'selector: app == "web"\ningress:\n  - action: Allow\n    source: {selector: app == "client"}'),
      [
        ['a2cli', 'a1web', 'tcp/80', true], // passed, then allowed in the default tier
        ['a1db', 'a1web', 'tcp/80', false], // passed, then end of the default tier
        ['a2cli', 'a1web', 'icmp', false], // end of tier sec
        ['a2cli', 'a1db', 'icmp', true], // selected by no tier
      ],
    );
  });

  it('a tier with defaultAction Pass lets undecided traffic through', async () => {
    await expectFlows(tier('soft', 20, ', defaultAction: Pass') + gnp('soft.db', 'tier: soft\nselector: all()\ningress:\n  - action: Deny\n    protocol: TCP\n    destination: {ports: [5432]}'), [
      ['a2cli', 'a1db', 'tcp/5432', false],
      ['a2cli', 'a1db', 'tcp/80', true],
      ['b1cli', 'c1cli', 'udp/53', true],
    ]);
  });

  it('Log does not end evaluation', async () => {
    await t.apply(gnp('logged', 'selector: app == "db"\ningress:\n  - {action: Log}\n  - {action: Deny, protocol: ICMP}\n  - {action: Allow}'));
    expect(await t.check([
      ['a2cli', 'a1db', 'icmp', false],
      ['a2cli', 'a1db', 'tcp/80', true],
    ])).toEqual([]);
    const listing = t.node.must(`iptables-${t.applier.backend}`, ['-L', '-v', '-x', '-n']);
    const logLine = listing.split('\n').find((l) => /\sLOG\s/.test(l))!;
    expect(Number(logLine.trim().split(/\s+/)[0])).toBeGreaterThanOrEqual(2);
  });

  it('nets and notNets', async () => {
    await expectFlows(gnp('nets', 'selector: app == "web"\ningress:\n  - action: Allow\n    source: {nets: [10.65.0.0/16], notNets: [10.65.2.0/24]}'), [
      ['a2cli', 'a1web', 'tcp/80', true],
      ['c1cli', 'a1web', 'udp/53', true],
      ['b1cli', 'a1web', 'tcp/80', false],
    ]);
  });

  it('port ranges, notPorts and named ports', async () => {
    await expectFlows(gnp('ports', 'selector: app == "web"\ningress:\n  - action: Allow\n    protocol: TCP\n    destination: {ports: ["400:450", web-alt, 80], notPorts: [80]}'), [
      ['a2cli', 'a1web', 'tcp/443', true],
      ['a2cli', 'a1web', 'tcp/8080', true], // web-alt is 8080 on a1web
      ['a2cli', 'b1web', 'tcp/8080', false], // b1web has no web-alt
      ['a2cli', 'a1web', 'tcp/80', false], // notPorts wins
      ['a2cli', 'a1web', 'tcp/5432', false],
    ]);
  });

  it('protocols by name and number, ICMP type and code', async () => {
    await expectFlows(gnp('protos', 'selector: app == "db"\ningress:\n  - {action: Deny, protocol: ICMP, icmp: {type: 8, code: 0}}\n  - {action: Allow, protocol: 17}\n  - {action: Allow, protocol: TCP, destination: {ports: [5432]}}'), [
      ['a2cli', 'a1db', 'icmp', false],
      ['a2cli', 'a1db', 'udp/53', true],
      ['a2cli', 'a1db', 'tcp/5432', true],
      ['a2cli', 'a1db', 'tcp/80', false],
    ]);
  });

  it('namespaceSelector in a namespaced policy', async () => {
    await expectFlows(tnp('from-team-b', 'a1', 'selector: app == "web"\ningress:\n  - action: Allow\n    source: {namespaceSelector: team == "b", selector: app == "client"}'), [
      ['b1cli', 'a1web', 'tcp/80', true],
      ['a2cli', 'a1web', 'tcp/80', false],
      ['c1cli', 'a1web', 'tcp/80', false],
      ['b1web', 'a1web', 'tcp/80', false],
    ]);
  });

  it('egress with notSelector and the projectcalico.org/namespace label', async () => {
    await expectFlows(gnp('b-clients', 'selector: app == "client" && projectcalico.org/namespace == "b1"\ntypes: [Egress]\negress:\n  - action: Allow\n    destination: {notSelector: app == "db"}'), [
      ['b1cli', 'a1db', 'tcp/5432', false],
      ['b1cli', 'a1web', 'tcp/80', true],
      ['a2cli', 'a1db', 'tcp/5432', true],
    ]);
  });
});

describe('tenant isolation across three tenants', () => {
  it('no policy: same tenant talks (across namespaces), different tenants do not', async () => {
    await expectFlows(settingsDoc({ tenantIsolation: true }), [
      ['a2cli', 'a1web', 'tcp/80', true], // tenant a spans a1 and a2
      ['b1cli', 'b1web', 'udp/53', true],
      ['b1cli', 'a1web', 'tcp/80', false],
      ['c1cli', 'b1web', 'icmp', false], // c is a tenant by namespace label
      ['a2cli', 'c1cli', 'udp/53', false],
      ['a1db', 'node', 'tcp/8080', true], // not pod-to-pod: unaffected
      ['node', 'c1cli', 'tcp/80', true],
    ]);
  });

  it('a policy can allow one other tenant in, and only that one', async () => {
    await expectFlows(settingsDoc({ tenantIsolation: true }) + tnp('from-b', 'a1', 'selector: app == "web"\ningress:\n  - action: Allow\n    source: {namespaceSelector: team == "b"}'), [
      ['b1cli', 'a1web', 'tcp/80', true],
      ['c1cli', 'a1web', 'tcp/80', false],
      ['a2cli', 'a1web', 'tcp/80', false], // selected now: only team b is allowed
      ['b1cli', 'a1db', 'tcp/80', false], // a1db is not selected: tenant isolation
    ]);
  });

  it('tenants by label, and a label change moves a pod between tenants without re-attaching; only set members and its own chain change', async () => {
    await t.apply(settingsDoc({ tenantIsolation: true }));
    const rulesBefore = (await ternRules()).split('\n');
    const setsBefore = ipsets();
    t.endpointOverrides.set('b1cli', { labels: { app: 'client', 'tern.io/tenant': 'a' } });
    try {
      await t.apply(settingsDoc({ tenantIsolation: true }));
      const rulesAfter = (await ternRules()).split('\n');
      const changed = [...rulesAfter.filter((l) => !rulesBefore.includes(l)), ...rulesBefore.filter((l) => !rulesAfter.includes(l))];
      expect(changed.length).toBeGreaterThan(0); // its tenant check names the other tenant's set now
      expect(changed.filter((l) => !l.startsWith(`-A tern-tw-${t.pod('b1cli').ep.hostIface} `))).toEqual([]);
      expect(ipsets()).not.toBe(setsBefore);
      expect(await t.check([
        ['b1cli', 'a1web', 'tcp/80', true],
        ['b1cli', 'b1web', 'tcp/80', false],
        ['a2cli', 'b1cli', 'udp/53', true],
      ])).toEqual([]);
    } finally {
      t.endpointOverrides.delete('b1cli');
    }
  });
});

describe('dynamic changes', () => {
  const pol = tnp('db-from-clients', 'a1', 'selector: app == "db"\ningress:\n  - action: Allow\n    source:\n      selector: app == "client"\n      namespaceSelector: all()');

  it('a label change takes effect without re-attaching the pod', async () => {
    await expectFlows(pol, [
      ['a1web', 'a1db', 'tcp/5432', false],
      ['a2cli', 'a1db', 'tcp/5432', true],
    ]);
    const before = await ternRules();
    t.endpointOverrides.set('a1web', { labels: { app: 'client' } });
    try {
      await expectFlows(pol, [['a1web', 'a1db', 'tcp/5432', true]]);
      expect(await ternRules()).toBe(before);
    } finally {
      t.endpointOverrides.delete('a1web');
    }
    await expectFlows(pol, [['a1web', 'a1db', 'tcp/5432', false]]);
  });

  it('a policy update takes effect on the next connection', async () => {
    await expectFlows(pol, [['b1web', 'a1db', 'tcp/5432', false]]);
    await expectFlows(pol.replace('app == "client"', 'app in {"client", "web"}'), [
      ['b1web', 'a1db', 'tcp/5432', true],
      ['a1web', 'a1db', 'tcp/5432', true],
    ]);
  });

  it('a second apply of the same state writes nothing', async () => {
    await t.apply(pol);
    const r = await t.apply(pol);
    expect({ chains: r.chainsWritten, sets: r.setsWritten, destroyed: r.setsDestroyed }).toEqual({ chains: 0, sets: 0, destroyed: 0 });
  });

  it('fails closed: a tern interface without an endpoint passes nothing, either way', async () => {
    t.removed.add('a1db');
    try {
      await t.apply('');
      const got = await Promise.all([t.probe('a1db', 'a1web', 'tcp/80'), t.probe('a2cli', 'a1db', 'tcp/80'), t.probe('a1db', 'node', 'tcp/8080'), t.probe('a2cli', 'a1web', 'tcp/80')]);
      expect(got).toEqual([false, false, false, true]);
    } finally {
      t.removed.delete('a1db');
    }
    await expectFlows('', [['a1db', 'a1web', 'tcp/80', true]]);
  });

  it('anti-spoofing: a pod cannot send from an address that is not its own', async () => {
    await t.apply('');
    const pod = t.pod('a2cli');
    pod.ns.ip('addr', 'add', '10.65.1.99/32', 'dev', 'eth0');
    try {
      const spoof = await pod.ns.execAsync('node', [`${__dirname}/fixtures/probe-client.cjs`, 'udp', '10.65.1.10', '53', '1500', '10.65.1.99']);
      const real = await pod.ns.execAsync('node', [`${__dirname}/fixtures/probe-client.cjs`, 'udp', '10.65.1.10', '53', '1500', '10.65.1.30']);
      expect({ spoof: spoof.code === 0, real: real.code === 0 }).toEqual({ spoof: false, real: true });
    } finally {
      pod.ns.ip('addr', 'del', '10.65.1.99/32', 'dev', 'eth0');
    }
  });

  it('failsafe ports on the node stay open whatever the policies say', async () => {
    await expectFlows(gnp('clients-locked', 'selector: app == "client"\ntypes: [Ingress, Egress]\negress:\n  - action: Deny'), [
      ['a2cli', 'node', 'tcp/22', true],
      ['a2cli', 'node', 'tcp/8080', false],
      ['a2cli', 'a1web', 'tcp/80', false],
      ['a1web', 'node', 'tcp/8080', true],
    ]);
  });

  it('a failed apply leaves the previous complete ruleset in place', async () => {
    const good = gnp('web-clients', 'selector: app == "web"\ningress:\n  - action: Allow\n    source: {selector: app == "client"}');
    await t.apply(good);
    const rules = await ternRules();
    const sets = ipsets();
    // The next state: a new set, a changed set, changed chains; then a rule the kernel rejects.
    t.endpointOverrides.set('a1db', { labels: { app: 'client' } });
    const next = compileRuleset(toInput(t.resources(good + gnp('extra', 'selector: app == "db"\ningress:\n  - action: Deny\n    source: {nets: [10.65.3.0/24, 10.65.2.0/24]}'))));
    next.v6.chains[next.v6.chains.length - 1].rules.push('-m no-such-match -j DROP');
    await expect(t.applier.apply(next)).rejects.toThrow(/ip6tables/);
    t.endpointOverrides.delete('a1db');
    expect(await ternRules()).toBe(rules);
    expect(ipsets()).toBe(sets);
    t.lastInput = toInput(t.resources(good));
    expect(await t.check([
      ['a2cli', 'a1web', 'tcp/80', true],
      ['a1db', 'a1web', 'tcp/80', false],
    ])).toEqual([]);
  });
});

describe('IPv6', () => {
  it('Kubernetes and Tern policies apply to IPv6 traffic', async () => {
    await expectFlows(
      `---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web6, namespace: a1}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n    - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}]\n      ports: [{port: 80}]\n` +
        gnp('no-echo6', 'selector: app == "db"\ningress:\n  - {action: Deny, protocol: ICMPv6, icmp: {type: 128}}\n  - {action: Allow}'),
      [
        ['a2cli', 'a1web', '6:tcp/80', true],
        ['a2cli', 'a1web', '6:tcp/443', false],
        ['a1db', 'a1web', '6:tcp/80', false],
        ['a2cli', 'a1db', '6:icmp', false],
        ['a2cli', 'a1db', '6:udp/53', true],
        ['a1db', 'a2cli', '6:icmp', true],
        ['node', 'a1web', '6:tcp/443', true],
      ],
    );
  });
});
