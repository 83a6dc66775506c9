/**
 * Policy updates under continuous traffic, on the legacy iptables backend:
 * a flow denied before and after an update must not pass a single packet
 * while chains and sets are rewritten, and an allowed flow keeps flowing.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { Sandbox, waitFor } from '../sandbox';
import { detectBackend } from '../../src/acl';
import { netnsExec } from '../../src/acl/applier';
import { AclTopology } from './topology';

const sb = new Sandbox('aupd');
// Each case applies rules and sends real packets; a loaded 2-core CI box needs room.
vi.setConfig({ testTimeout: 180_000 });
let t: AclTopology;

beforeAll(async () => {
  t = await AclTopology.create(
    sb,
    [
      { name: 'x', namespace: 'n', labels: { app: 'x' }, v4: '10.67.0.1' },
      { name: 'y', namespace: 'n', labels: { app: 'y' }, v4: '10.67.0.2' },
      { name: 'z', namespace: 'n', labels: { app: 'z' }, v4: '10.67.0.3' },
    ],
    { backend: 'legacy' },
  );
}, 120_000);

afterAll(async () => {
  await t?.dispose();
  await sb.cleanup();
});

// Both states deny x -> y udp/9000 and allow x -> y udp/53, with different chains and sets.
const K8S = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: y-in, namespace: n}
spec:
  podSelector: {matchLabels: {app: y}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: z}}}]
    - from: [{podSelector: {matchLabels: {app: x}}}]
      ports: [{protocol: UDP, port: 53}]
`;
const TERN = `apiVersion: tern.io/v1
kind: Tier
metadata: {name: guard}
spec: {order: 5}
---
apiVersion: tern.io/v1
kind: GlobalNetworkPolicy
metadata: {name: guard.y}
spec:
  tier: guard
  selector: app == "y"
  ingress:
    - action: Deny
      protocol: UDP
      source: {selector: app == "x"}
      destination: {ports: ["9000:9010"]}
    - action: Pass
---
apiVersion: tern.io/v1
kind: NetworkPolicy
metadata: {name: y-open, namespace: n}
spec:
  selector: app == "y"
  ingress:
    - action: Allow
      protocol: UDP
      destination: {ports: [53]}
    - action: Allow
      source:
        selector: app in {"z", "w"}
`;

describe('update under continuous traffic (legacy backend)', () => {
  it('programs the legacy backend, and detection then finds it', async () => {
    await t.apply(K8S);
    expect(t.applier.backend).toBe('legacy');
    expect(await detectBackend(netnsExec(t.node.path))).toBe('legacy');
    expect(t.node.must('iptables-legacy-save', ['-t', 'filter'])).toContain('tern-FORWARD');
    expect(t.node.must('iptables-nft-save', ['-t', 'filter'])).not.toContain('tern-');
  });

  it('a flow denied before and after never gets through during updates; an allowed one keeps flowing', async () => {
    await t.apply(K8S);
    expect(await t.check([
      ['x', 'y', 'udp/9000', false],
      ['x', 'y', 'udp/53', true],
      ['z', 'y', 'udp/9000', true],
    ])).toEqual([]);
    const before9000 = (t.pod('y').server.output().match(/udp 9000 10\.67\.0\.1 /g) ?? []).length;
    const client = path.join(__dirname, 'fixtures', 'udp-stream.cjs');
    const stream = (port: string) => {
      const child = spawn('nsenter', [`--net=${t.pod('x').ns.path}`, '--', 'node', client, '10.67.0.2', port], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      const done = new Promise<string>((resolve) => child.on('exit', () => resolve(out)));
      return { child, done, started: () => out.includes('started') };
    };
    const denied = stream('9000');
    const allowed = stream('53');
    await waitFor(() => denied.started() && allowed.started(), { timeoutMs: 30_000, what: 'udp streams' });
    // Rewrite chains and sets back and forth while both streams run, with membership churn too.
    const applies = 6;
    for (let i = 0; i < applies; i++) {
      t.endpointOverrides.set('z', { labels: { app: i % 2 ? 'w' : 'z' } });
      await t.apply(i % 2 ? TERN : K8S);
      await new Promise((r) => setTimeout(r, 100));
    }
    t.endpointOverrides.delete('z');
    await new Promise((r) => setTimeout(r, 300));
    denied.child.kill('SIGTERM');
    allowed.child.kill('SIGTERM');
    const d = { stdout: await denied.done };
    const a = { stdout: await allowed.done };
    const sentDenied = Number(/sent (\d+)/.exec(d.stdout)![1]);
    const repliesDenied = Number(/replies (\d+)/.exec(d.stdout)![1]);
    const repliesAllowed = Number(/replies (\d+)/.exec(a.stdout)![1]);
    const got9000 = (t.pod('y').server.output().match(/udp 9000 10\.67\.0\.1 /g) ?? []).length - before9000;
    // One object, so a failure shows every number at once.
    const seen = { applies, sentDenied, repliesAllowed, got9000, repliesDenied };
    expect({ ...seen, sentDenied: sentDenied > 100, repliesAllowed: repliesAllowed > 10 }, JSON.stringify(seen)).toEqual({ applies, sentDenied: true, repliesAllowed: true, got9000: 0, repliesDenied: 0 });
  });
});
