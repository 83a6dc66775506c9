/**
 * Kubernetes NetworkPolicy semantics, proven with real TCP/UDP/ICMP packets
 * between pod namespaces through a node namespace programmed by the applier.
 * Every flow is also checked against `explain` for the same packet.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { Sandbox } from '../sandbox';
import { parsePolicyText } from '../../src/acl';
import { AclTopology, type Flow } from './topology';

const sb = new Sandbox('ak8s');
// Each case applies rules and sends real packets; a loaded 2-core CI box needs room.
vi.setConfig({ testTimeout: 180_000 });
let t: AclTopology;

const ns = (name: string, labels: Record<string, string>) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${name}, labels: ${JSON.stringify(labels)}}\n`;
const np = (name: string, namespace: string, spec: string) => `---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n${spec.replace(/^/gm, '  ')}\n`;

beforeAll(async () => {
  t = await AclTopology.create(sb, [
    { name: 'web', namespace: 'shop', labels: { app: 'web' }, v4: '10.64.1.10', namedPorts: [{ name: 'http', protocol: 6, port: 80 }] },
    { name: 'db', namespace: 'shop', labels: { app: 'db' }, v4: '10.64.1.20', namedPorts: [{ name: 'http', protocol: 6, port: 5432 }] },
    { name: 'cli', namespace: 'shop', labels: { app: 'client' }, v4: '10.64.1.30' },
    { name: 'ext', namespace: 'other', labels: { app: 'client' }, v4: '10.64.2.40' },
  ]);
  t.base = parsePolicyText(ns('shop', { team: 'shop' }) + '---\n' + ns('other', { team: 'other' }), 'ns.yaml');
}, 120_000);

afterAll(async () => {
  await t?.dispose();
  await sb.cleanup();
});

async function expectFlows(yaml: string, flows: Flow[]): Promise<void> {
  await t.apply(yaml);
  expect(await t.check(flows)).toEqual([]);
}

describe('Kubernetes NetworkPolicy on real packets', () => {
  it('no policy: every pod reaches every pod over TCP, UDP and ICMP', async () => {
    await expectFlows('', [
      ['cli', 'web', 'tcp/80', true],
      ['ext', 'db', 'udp/53', true],
      ['web', 'ext', 'icmp', true],
      ['db', 'cli', 'tcp/9000', true],
    ]);
  });

  it('a selected pod is isolated for ingress; unselected pods stay open', async () => {
    await expectFlows(np('web-from-client', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - from: [{podSelector: {matchLabels: {app: client}}}]'), [
      ['cli', 'web', 'tcp/80', true],
      ['db', 'web', 'tcp/80', false],
      ['db', 'web', 'icmp', false],
      ['web', 'db', 'tcp/80', true], // db is not selected
      ['ext', 'web', 'tcp/80', false], // podSelector alone means this namespace only
    ]);
  });

  it('policies are additive', async () => {
    await expectFlows(
      np('web-from-client', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - from: [{podSelector: {matchLabels: {app: client}}}]') +
        np('web-from-db', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - from: [{podSelector: {matchLabels: {app: db}}}]'),
      [
        ['cli', 'web', 'tcp/80', true],
        ['db', 'web', 'tcp/80', true],
        ['ext', 'web', 'tcp/80', false],
      ],
    );
  });

  it('policyTypes defaulting: egress rules alone also isolate ingress', async () => {
    await expectFlows(np('web-egress', 'shop', 'podSelector: {matchLabels: {app: web}}\negress:\n  - to: [{podSelector: {matchLabels: {app: db}}}]'), [
      ['cli', 'web', 'tcp/80', false], // ingress isolated with no ingress rules
      ['web', 'db', 'tcp/5432', true],
      ['web', 'cli', 'tcp/80', false], // egress isolated
    ]);
  });

  it('policyTypes defaulting: egress: [] does not isolate egress', async () => {
    await expectFlows(np('web-none', 'shop', 'podSelector: {matchLabels: {app: web}}\negress: []'), [
      ['cli', 'web', 'tcp/80', false],
      ['web', 'cli', 'tcp/80', true],
      ['web', 'ext', 'udp/53', true],
    ]);
  });

  it('policyTypes [Egress] only isolates egress, ports pair with the peer', async () => {
    await expectFlows(np('web-egress-only', 'shop', 'podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress:\n  - to: [{podSelector: {matchLabels: {app: db}}}]\n    ports: [{port: 5432}]'), [
      ['web', 'db', 'tcp/5432', true],
      ['web', 'db', 'tcp/80', false],
      ['web', 'cli', 'tcp/5432', false],
      ['cli', 'web', 'tcp/80', true],
    ]);
  });

  it('from: [] and to: [] match every peer (only the ports restrict)', async () => {
    await expectFlows(
      np('web-any-8080', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - from: []\n    ports: [{protocol: TCP, port: 8080}]') +
        np('db-out-5432', 'shop', 'podSelector: {matchLabels: {app: db}}\npolicyTypes: [Egress]\negress:\n  - to: []\n    ports: [{protocol: TCP, port: 5432}]'),
      [
        ['cli', 'web', 'tcp/8080', true],
        ['ext', 'web', 'tcp/8080', true],
        ['cli', 'web', 'tcp/80', false],
        ['db', 'web', 'tcp/5432', false],
        ['db', 'ext', 'tcp/5432', true],
        ['db', 'cli', 'tcp/80', false],
      ],
    );
  });

  it('podSelector AND namespaceSelector in one peer; separate peers are ORed', async () => {
    await expectFlows(
      np('and', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - from: [{namespaceSelector: {matchLabels: {team: other}}, podSelector: {matchLabels: {app: db}}}]') +
        np('or', 'shop', 'podSelector: {matchLabels: {app: db}}\ningress:\n  - from: [{namespaceSelector: {matchLabels: {team: other}}}, {podSelector: {matchLabels: {app: web}}}]'),
      [
        ['ext', 'web', 'tcp/80', false], // ext is in team=other but is not app=db
        ['db', 'web', 'tcp/80', false], // db is app=db but not in team=other
        ['ext', 'db', 'tcp/80', true], // first peer of "or"
        ['web', 'db', 'tcp/80', true], // second peer of "or"
        ['cli', 'db', 'tcp/80', false],
      ],
    );
  });

  it('a selector that matches no pod allows nothing', async () => {
    await expectFlows(np('nobody', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - from: [{podSelector: {matchLabels: {app: ghost}}}]'), [
      ['cli', 'web', 'tcp/80', false],
      ['db', 'web', 'udp/53', false],
    ]);
  });

  it('ipBlock with except', async () => {
    await expectFlows(np('block', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - from: [{ipBlock: {cidr: 10.64.0.0/16, except: [10.64.1.30/32]}}]'), [
      ['db', 'web', 'tcp/80', true],
      ['ext', 'web', 'tcp/80', true],
      ['cli', 'web', 'tcp/80', false],
    ]);
  });

  it('ports pair with the peers of their own rule only', async () => {
    await expectFlows(
      np('pairs', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - from: [{podSelector: {matchLabels: {app: client}}}]\n    ports: [{port: 80}]\n  - from: [{podSelector: {matchLabels: {app: db}}}]\n    ports: [{port: 443}]'),
      [
        ['cli', 'web', 'tcp/80', true],
        ['cli', 'web', 'tcp/443', false],
        ['db', 'web', 'tcp/443', true],
        ['db', 'web', 'tcp/80', false],
      ],
    );
  });

  it('protocol defaults to TCP; UDP must be named', async () => {
    await expectFlows(np('tcpdefault', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - ports: [{port: 9000}, {port: 53, protocol: UDP}]'), [
      ['cli', 'web', 'tcp/9000', true],
      ['cli', 'web', 'udp/9000', false],
      ['cli', 'web', 'udp/53', true],
      ['ext', 'web', 'tcp/80', false],
    ]);
  });

  it('endPort ranges', async () => {
    await expectFlows(np('range', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - ports: [{port: 400, endPort: 450}]'), [
      ['cli', 'web', 'tcp/443', true],
      ['cli', 'web', 'tcp/80', false],
      ['cli', 'web', 'tcp/5432', false],
    ]);
  });

  it('SCTP ports and ranges (INIT chunks through the real forwarding path)', async () => {
    await expectFlows(np('sig', 'shop', 'podSelector: {matchLabels: {app: web}}\ningress:\n  - ports: [{protocol: SCTP, port: 3868}, {protocol: SCTP, port: 2905, endPort: 2910}]'), [
      ['cli', 'web', 'sctp/3868', true],
      ['cli', 'web', 'sctp/2907', true],
      ['cli', 'web', 'sctp/2911', false],
      ['cli', 'web', 'tcp/3868', false], // the protocol is part of the port
      ['cli', 'db', 'sctp/9999', true], // db is not selected
    ]);
  });

  it('named ports resolve on each destination pod', async () => {
    await expectFlows(np('named', 'shop', 'podSelector: {matchExpressions: [{key: app, operator: In, values: [web, db]}]}\ningress:\n  - ports: [{port: http}]'), [
      ['cli', 'web', 'tcp/80', true], // http is 80 on web
      ['cli', 'web', 'tcp/5432', false],
      ['cli', 'db', 'tcp/5432', true], // and 5432 on db
      ['cli', 'db', 'tcp/80', false],
    ]);
  });

  it('replies of allowed connections pass (conntrack), even when the replying side denies egress', async () => {
    await expectFlows(np('web-locked', 'shop', 'podSelector: {matchLabels: {app: web}}\npolicyTypes: [Ingress, Egress]\ningress:\n  - from: [{podSelector: {matchLabels: {app: client}}}]'), [
      ['cli', 'web', 'tcp/80', true],
      ['cli', 'web', 'udp/53', true],
      ['web', 'cli', 'tcp/80', false],
    ]);
  });

  it('traffic from the pod\'s own node is always allowed in', async () => {
    await expectFlows(np('deny-all', 'shop', 'podSelector: {}\npolicyTypes: [Ingress]'), [
      ['node', 'web', 'tcp/80', true],
      ['node', 'db', 'icmp', true],
      ['cli', 'web', 'tcp/80', false],
      ['ext', 'db', 'icmp', false],
    ]);
  });

  it('matchExpressions NotIn and DoesNotExist select pods lacking the key', async () => {
    await expectFlows(np('notin', 'shop', 'podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [web]}]}\ningress:\n  - from: [{podSelector: {matchExpressions: [{key: role, operator: DoesNotExist}]}}]\n    ports: [{port: 443}]'), [
      ['cli', 'db', 'tcp/443', true],
      ['cli', 'db', 'tcp/80', false],
      ['db', 'web', 'tcp/80', true], // web is not selected
    ]);
  });
});
