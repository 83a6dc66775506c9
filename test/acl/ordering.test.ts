/**
 * Every intermediate kernel state of an apply, probed with real packets: the
 * applier pauses after each step (sets created, gate closed, members changed,
 * rules written, gate opened) while every pod connects to every other.
 *   - a flow is admitted in an intermediate state only if the old or the new
 *     ruleset admits it;
 *   - a flow that touches a pod whose state changes (joins, leaves, is
 *     relabelled) is admitted only if both admit it.
 * Then the case that prompted it, at scale: a pod probed from before its own
 * ADD while a default-deny selects its namespace, with 3,000 other endpoints:
 * 0 packets in 10 trials.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { Sandbox, waitFor } from '../sandbox';
import { Applier, compileRuleset, explainPacket, parsePolicyText, toInput, type PolicyInput, type Resource } from '../../src/acl';
import type { ApplyStep } from '../../src/acl/applier';
import { AclTopology } from './topology';

vi.setConfig({ testTimeout: 600_000 });
const sb = new Sandbox('aorder');
let t: AclTopology;
const PODS = ['a', 'b', 'c', 'd', 'n'];
const MULTI = path.join(__dirname, 'fixtures', 'multi-probe.py');
const FORGE = path.join(__dirname, 'fixtures', 'forge.py');

const np = (name: string, ns: string, spec: string) => `---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n${spec.replace(/^/gm, '  ')}\n`;
const DENY_N1 = np('default-deny', 'n1', 'podSelector: {}\npolicyTypes: [Ingress]');
const FROM_CLIENT = np('web-from-client', 'n1', 'podSelector: {matchLabels: {app: web}}\ningress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}]}]');
const FROM_DB = FROM_CLIENT.replace('app: client}', 'app: db}');
const TENANTS = 'apiVersion: tern.io/v1\nkind: ClusterSettings\nmetadata: {name: default}\nspec: {tenantIsolation: true}\n---\napiVersion: tern.io/v1\nkind: Tenant\nmetadata: {name: t1}\nspec: {namespaces: [n1]}\n---\napiVersion: tern.io/v1\nkind: Tenant\nmetadata: {name: t2}\nspec: {namespaces: [n2]}\n';

beforeAll(async () => {
  t = await AclTopology.create(sb, [
    { name: 'a', namespace: 'n1', labels: { app: 'web' }, v4: '10.66.1.1' },
    { name: 'b', namespace: 'n1', labels: { app: 'db' }, v4: '10.66.1.2' },
    { name: 'c', namespace: 'n1', labels: { app: 'client' }, v4: '10.66.1.3' },
    { name: 'd', namespace: 'n2', labels: { app: 'client' }, v4: '10.66.2.4' },
    { name: 'n', namespace: 'n1', labels: { app: 'web' }, v4: '10.66.1.5' },
  ]);
}, 120_000);

afterAll(async () => {
  await t?.dispose();
  await sb.cleanup();
});

interface State {
  yaml: string;
  removed: string[];
  labels?: Record<string, Record<string, string>>;
}

function inputOf(s: State): PolicyInput {
  t.removed = new Set(s.removed);
  t.endpointOverrides = new Map(Object.entries(s.labels ?? {}).map(([k, labels]) => [k, { labels }]));
  return toInput(t.resources(s.yaml));
}

/** Every ordered pod pair on tcp/80, from real connects: "a>b" -> connected. */
async function observe(): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  await Promise.all(
    PODS.map(async (from) => {
      const to = PODS.filter((p) => p !== from);
      const r = await t.pod(from).ns.execAsync('python3', [MULTI, '0.7', ...to.map((p) => `${t.addr(p)}:80`)]);
      (JSON.parse(r.stdout) as boolean[]).forEach((ok, i) => (out[`${from}>${to[i]}`] = ok));
    }),
  );
  return out;
}

function verdicts(input: PolicyInput): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const from of PODS)
    for (const to of PODS.filter((p) => p !== from)) {
      const present = (p: string) => input.endpoints.some((e) => e.name === p);
      out[`${from}>${to}`] = present(from) && present(to) && explainPacket(input, { src: t.addr(from), dst: t.addr(to), protocol: 6, dstPort: 80 }).verdict === 'allow';
    }
  return out;
}

const transitions: { name: string; from: State; to: State; changing: string[] }[] = [
  { name: 'a pod joins a namespace under default-deny', from: { yaml: DENY_N1 + FROM_CLIENT, removed: ['n'] }, to: { yaml: DENY_N1 + FROM_CLIENT, removed: [] }, changing: ['n'] },
  { name: 'a label change moves a pod between policies', from: { yaml: FROM_CLIENT, removed: [] }, to: { yaml: FROM_CLIENT, removed: [], labels: { c: { app: 'db' }, b: { app: 'client' } } }, changing: ['b', 'c'] },
  { name: 'a policy edit swaps the allowed peers', from: { yaml: FROM_CLIENT, removed: [] }, to: { yaml: FROM_DB, removed: [] }, changing: [] },
  { name: 'a default-deny arrives', from: { yaml: FROM_CLIENT, removed: [] }, to: { yaml: DENY_N1 + FROM_CLIENT, removed: [] }, changing: ['b', 'c', 'n'] },
  { name: 'a pod leaves while tenant isolation is turned on', from: { yaml: FROM_DB, removed: [] }, to: { yaml: FROM_DB + '---\n' + TENANTS, removed: ['b'] }, changing: ['b'] },
];

describe('apply ordering: no intermediate kernel state admits more than the old and new rulesets', () => {
  for (const tr of transitions) {
    it(tr.name, async () => {
      const oldIn = inputOf(tr.from);
      await t.applier.apply(compileRuleset(oldIn));
      const newIn = inputOf(tr.to);
      const oldV = verdicts(oldIn);
      const newV = verdicts(newIn);
      expect(await observe()).toEqual(oldV); // the kernel agrees with explain before ...
      const seen: { step: ApplyStep; flows: Record<string, boolean> }[] = [];
      const paused = new Applier({ netnsPath: t.node.path, backend: t.applier.backend, lockFile: t.applier.lockFile + '.paused', afterStep: async (step) => void seen.push({ step, flows: await observe() }) });
      await paused.apply(compileRuleset(newIn));
      expect(await observe()).toEqual(newV); // ... and after
      expect(seen.length).toBeGreaterThan(0);
      // Per flow, the verdicts in order (old, each paused step, new) must read old* drop* new*:
      // never a state that mixes, never back to old after new.
      const bad: string[] = [];
      for (const flow of Object.keys(oldV)) {
        const seq = [oldV[flow], ...seen.map((s) => s.flows[flow]), newV[flow]];
        let i = 0;
        while (i < seq.length && seq[i] === oldV[flow]) i++;
        while (i < seq.length && !seq[i]) i++;
        while (i < seq.length && seq[i] === newV[flow]) i++;
        if (i < seq.length) bad.push(`${flow}: ${seq.map((v, k) => `${k === 0 ? 'old' : k === seq.length - 1 ? 'new' : seen[k - 1].step}=${v ? 'pass' : 'drop'}`).join(' ')}`);
        // A pod whose state changes passes nothing that either ruleset denies until it is complete.
        const strict = tr.changing.some((p) => flow.split('>').includes(p));
        seen.slice(0, -1).forEach((s, k) => {
          if (strict && s.flows[flow] && !(oldV[flow] && newV[flow]) && seen.slice(0, k + 1).some((x) => x.step === 'close')) bad.push(`${flow} passed after '${s.step}' while its pod was in flux`);
        });
      }
      expect(bad).toEqual([]);
    });
  }
});

describe('a new pod is not reachable during its own ADD (3,000 other endpoints, default-deny)', () => {
  const OTHERS = 3000;
  const others: Resource[] = Array.from({ length: OTHERS }, (_, i) => ({
    kind: 'Endpoint',
    key: `n1/other${i}`,
    value: { name: `other${i}`, namespace: 'n1', labels: { app: 'web' }, ips: [`10.80.${i >> 8}.${i & 255}`], hostIface: `ternx${i.toString(16).padStart(6, '0')}`, namedPorts: [] },
  }));
  // c is denied by the default-deny; b (app=db) is let in, as a control that the receiver hears.
  const policy = parsePolicyText(DENY_N1 + FROM_DB, 'p.yaml');

  it('0 packets from a denied pod reach it in 10 trials; the allowed pod gets through each time', async () => {
    const rs = (withNew: boolean) => {
      t.removed = new Set(withNew ? [] : ['n']);
      t.endpointOverrides = new Map();
      return compileRuleset(toInput([...t.resources(''), ...others, ...policy]));
    };
    const without = rs(false);
    const withNew = rs(true);
    const results: { leaked: number; control: number; applyMs: number }[] = [];
    for (let trial = 0; trial < 10; trial++) {
      await t.applier.apply(without);
      const recv = spawn('nsenter', [`--net=${t.pod('n').ns.path}`, '--', 'python3', FORGE, 'recv', '7000'], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      recv.stdout!.on('data', (d) => (out += d));
      const done = new Promise<void>((resolve) => recv.on('exit', () => resolve()));
      await waitFor(() => out.includes('ready') || undefined, { what: 'receiver', timeoutMs: 30_000 });
      // The denied pod sends from before the ADD's sync until after it, one packet every ~0.2 ms.
      const flood = spawn('nsenter', [`--net=${t.pod('c').ns.path}`, '--', 'python3', FORGE, 'send', t.addr('c'), t.addr('n'), '7000', '0', '0.0002'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let flooding = false;
      flood.stdout!.on('data', () => (flooding = true));
      await waitFor(() => flooding || undefined, { what: 'flood', timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      await t.applier.apply(withNew);
      const applyMs = Date.now() - t0;
      await new Promise((r) => setTimeout(r, 300));
      flood.kill('SIGKILL');
      await t.pod('b').ns.execAsync('python3', [FORGE, 'send', t.addr('b'), t.addr('n'), '7000', '20']);
      await new Promise((r) => setTimeout(r, 200));
      recv.stdin!.end();
      await done;
      const seen = JSON.parse(out.split('\n').filter(Boolean).pop()!) as Record<string, number>;
      results.push({ leaked: seen[t.addr('c')] ?? 0, control: seen[t.addr('b')] ?? 0, applyMs });
    }
    if (process.env.ACL_DEBUG) console.log(results);
    expect(results.map((r) => ({ leaked: r.leaked, heard: r.control >= 15 }))).toEqual(Array(10).fill({ leaked: 0, heard: true }));
  });
});
