import { describe, it, expect } from 'vitest';
import { parsePolicyText } from './parse';
import { formatSelector } from './selector';
import type { Policy } from './model';

const k8s = (spec: string, meta = '{name: p, namespace: shop}') => `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: ${meta}\nspec:\n${spec.replace(/^/gm, '  ')}\n`;
const policy = (text: string): Policy => {
  const [r] = parsePolicyText(text, 'p.yaml');
  if (r.kind !== 'Policy') throw new Error('not a policy');
  return r.value;
};

describe('Kubernetes NetworkPolicy normalisation', () => {
  const types: [string, string, { ingress: boolean; egress: boolean }][] = [
    ['no policyTypes, no rules', 'podSelector: {}', { ingress: true, egress: false }],
    ['egress rules only', 'podSelector: {}\negress: [{}]', { ingress: true, egress: true }],
    ['egress: []', 'podSelector: {}\negress: []', { ingress: true, egress: false }],
    ['explicit Egress', 'podSelector: {}\npolicyTypes: [Egress]', { ingress: false, egress: true }],
    ['explicit both', 'podSelector: {}\npolicyTypes: [Ingress, Egress]', { ingress: true, egress: true }],
  ];
  for (const [name, spec, want] of types) it(`policyTypes: ${name}`, () => expect(policy(k8s(spec)).types).toEqual(want));

  it('namespace defaults to "default"; order 1000 in the default tier', () => {
    const p = policy(k8s('podSelector: {}', '{name: p}'));
    expect({ ns: p.namespace, order: p.order, tier: p.tier }).toEqual({ ns: 'default', order: 1000, tier: 'default' });
  });

  it('one rule per (peer, protocol); ports stay with their own rule; TCP by default', () => {
    const p = policy(k8s('podSelector: {}\ningress:\n  - from: [{podSelector: {matchLabels: {a: "1"}}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]\n    ports: [{port: 80}, {port: 53, protocol: UDP}, {port: 8000, endPort: 8080}]\n  - from: [{namespaceSelector: {}}]'));
    expect(p.ingress).toHaveLength(5);
    expect(p.ingress[0]).toMatchObject({ action: 'Allow', protocol: 6, source: { namespace: 'shop' }, destination: { ports: [{ first: 80, last: 80 }, { first: 8000, last: 8080 }] } });
    expect(p.ingress[1]).toMatchObject({ protocol: 17, destination: { ports: [{ first: 53, last: 53 }] } });
    expect(p.ingress[2]).toMatchObject({ protocol: 6, source: { nets: ['10.0.0.0/8'], notNets: ['10.1.0.0/16'] } });
    expect(p.ingress[4].protocol).toBeUndefined();
    expect(formatSelector(p.ingress[4].source.namespaceSelector!)).toBe('all()');
  });

  it('podSelector and namespaceSelector in one peer are ANDed', () => {
    const p = policy(k8s('podSelector: {}\negress:\n  - to: [{podSelector: {matchLabels: {app: db}}, namespaceSelector: {matchLabels: {team: x}}}]\n    ports: [{port: pg}]'));
    expect(formatSelector(p.egress[0].destination.selector!)).toBe('app == "db"');
    expect(formatSelector(p.egress[0].destination.namespaceSelector!)).toBe('team == "x"');
    expect(p.egress[0].destination.namespace).toBeUndefined();
    expect(p.egress[0].destination.ports).toEqual([{ name: 'pg' }]);
  });

  it('from: [] and to: [] match every peer, as a missing list does', () => {
    for (const [spec, dir] of [
      ['ingress:\n  - from: []\n    ports: [{port: 8080}]', 'ingress'],
      ['ingress:\n  - ports: [{port: 8080}]', 'ingress'],
      ['policyTypes: [Egress]\negress:\n  - to: []\n    ports: [{port: 8080}]', 'egress'],
    ] as const) {
      expect(policy(k8s(`podSelector: {}\n${spec}`))[dir]).toEqual([{ action: 'Allow', protocol: 6, source: {}, destination: { ports: [{ first: 8080, last: 8080 }] } }]);
    }
  });

  it('a port entry without a port allows every port of its protocol', () => {
    const p = policy(k8s('podSelector: {}\ningress:\n  - ports: [{protocol: UDP}]'));
    expect(p.ingress).toEqual([{ action: 'Allow', protocol: 17, source: {}, destination: {} }]);
  });
});

describe('Tern / Calico v3 resources', () => {
  it('a namespaced policy scopes bare rule selectors to its namespace; a global one does not', () => {
    const ns = policy('apiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: n, namespace: a}\nspec:\n  ingress: [{action: Allow, source: {selector: x == "1"}}]\n');
    const gl = policy('apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec:\n  ingress: [{action: Allow, source: {selector: x == "1"}}]\n');
    expect(ns.ingress[0].source.namespace).toBe('a');
    expect(gl.ingress[0].source.namespace).toBeUndefined();
    expect(ns.types).toEqual({ ingress: true, egress: false });
  });

  const calicoTypes: [string, string, { ingress: boolean; egress: boolean }][] = [
    ['no rules', '{}', { ingress: true, egress: false }],
    ['ingress only', '{ingress: [{action: Allow}]}', { ingress: true, egress: false }],
    ['egress only', '{egress: [{action: Allow}]}', { ingress: false, egress: true }],
    ['both', '{ingress: [{action: Allow}], egress: [{action: Allow}]}', { ingress: true, egress: true }],
    ['explicit', '{types: [Ingress], egress: [{action: Allow}]}', { ingress: true, egress: false }],
  ];
  for (const [api, kind, md] of [
    ['projectcalico.org/v3', 'NetworkPolicy', '{name: n, namespace: a}'],
    ['tern.io/v1', 'GlobalNetworkPolicy', '{name: g}'],
  ])
    for (const [name, spec, want] of calicoTypes) it(`${api} ${kind} types default: ${name}`, () => expect(policy(`apiVersion: ${api}\nkind: ${kind}\nmetadata: ${md}\nspec: ${spec}\n`).types).toEqual(want));

  it('ports: numbers, ranges and names; protocols by name and number', () => {
    const p = policy('apiVersion: tern.io/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec:\n  egress:\n    - {action: Allow, protocol: 132, destination: {ports: [80, "1000:2000", web]}}\n    - {action: Deny, protocol: ICMPv6, icmp: {type: 128, code: 0}}\n');
    expect(p.egress[0].destination.ports).toEqual([{ first: 80, last: 80 }, { first: 1000, last: 2000 }, { name: 'web' }]);
    expect(p.egress[1]).toMatchObject({ protocol: 58, icmp: { type: 128, code: 0 } });
    expect(p.types).toEqual({ ingress: false, egress: true }); // Calico: egress rules only -> [Egress]
  });

  it('multi-document YAML, JSON and a JSON List, with each resource\'s line', () => {
    const text = '---\napiVersion: tern.io/v1\nkind: Tier\nmetadata: {name: a}\n---\n\n---\napiVersion: tern.io/v1\nkind: Tenant\nmetadata: {name: t}\nspec: {namespaces: [x, y]}\n';
    const rs = parsePolicyText(text, 'f.yaml');
    expect(rs.map((r) => [r.kind, r.key, (r.value as { origin?: { line: number } }).origin?.line])).toEqual([
      ['Tier', 'a', 2],
      ['Tenant', 't', 8],
    ]);
    const list = parsePolicyText(JSON.stringify({ kind: 'List', items: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n', labels: { a: 'b' } } }] }), 'l.json');
    expect(list).toEqual([{ kind: 'Namespace', key: 'n', value: { name: 'n', labels: { a: 'b' }, origin: { file: 'l.json', line: 1 } } }]);
  });

  it('WorkloadEndpoint becomes an endpoint with named ports', () => {
    const [r] = parsePolicyText('apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: w, namespace: n, labels: {app: a}}\nspec: {pod: p, interfaceName: tern1, ipNetworks: [10.0.0.1/32, "fd00::1/128"], ports: [{name: http, protocol: TCP, port: 80}]}\n', 'w.yaml');
    expect(r).toEqual({ kind: 'Endpoint', key: 'n/p', value: { name: 'p', namespace: 'n', labels: { app: 'a' }, ips: ['10.0.0.1', 'fd00::1'], hostIface: 'tern1', namedPorts: [{ name: 'http', protocol: 6, port: 80 }] } });
  });
});
