import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, Sandbox, type Netns } from '../sandbox';
import { netnsExec, type Exec } from '../../src/dataplane/exec';
import { nftGeneration } from '../../src/dataplane/nft-gen';
import { Applier, compileRuleset, parsePolicyText, toInput, type Endpoint, type Resource } from '../../src/acl';
import { fileMemory } from '../../src/acl/known-rules';

/**
 * A standalone CNI ADD or DEL is a new process each time. What one process
 * learned about the rules (backend, the generation of its own last commit,
 * the rules) is kept in a file for the next; each test's "process" here is a
 * fresh Applier. The next one trusts the file only while the kernel proves it
 * (same nf_tables generation, same gate sets): then it runs no tool at all
 * when only set members change. Anything else is read as before.
 */
const sb = new Sandbox('aknown');
let node: Netns;
let dir: string;

const POLICIES = fs.readFileSync(path.join(REPO, 'docs', 'examples', 'tenant-isolation.yaml'), 'utf8');
function endpoints(n: number): Resource[] {
  return Array.from({ length: n }, (_, i) => {
    const e: Endpoint = { name: `p${i}`, namespace: 'alpha', labels: { app: 'other' }, ips: [`10.71.0.${i + 1}`], hostIface: `tern${String(i).padStart(11, '0')}`, namedPorts: [] };
    return { kind: 'Endpoint', key: `${e.namespace}/${e.name}`, value: e };
  });
}
/** Endpoints only (what a node without policies has): an ADD or DEL changes set members, not rules. */
const plain = (n: number) => compileRuleset(toInput(endpoints(n)));
const withPolicy = (n: number) => compileRuleset(toInput([...parsePolicyText(POLICIES, 'p.yaml'), ...endpoints(n)]));

/** One "process": a new applier with its tool calls recorded, the record in `file`. */
function process1(ns: Netns, file: string, lock: string): { applier: Applier; calls: string[] } {
  const base = netnsExec(ns.path);
  const calls: string[] = [];
  const exec: Exec = (cmd, args, input) => (calls.push(cmd), base(cmd, args, input));
  return { calls, applier: new Applier({ netnsPath: ns.path, exec, netlink: true, memory: fileMemory(file), lockFile: lock }) };
}
const saves = (calls: string[]) => calls.filter((c) => /tables-(nft|legacy)-save$/.test(c));
const hooks = (ns: Netns, tool = 'iptables-nft-save') => ns.must(tool, ['-t', 'filter']).split('\n').filter((l) => l.includes('tern:hook'));
const gate = (ns: Netns) => ns.must('ipset', ['save', 'tern-ep4']);

let file: string;
let lock: string;
const run = (ns = node) => process1(ns, file, lock);

beforeAll(() => {
  dir = sb.tmpdir();
});
afterAll(() => sb.cleanup());

describe('the record of the last apply, across processes', () => {
  beforeAll(async () => {
    node = sb.netns('node');
    file = path.join(dir, 'known.json');
    lock = path.join(dir, 'acl.lock');
    const first = run();
    await first.applier.apply(plain(3));
    // The first process of all has nothing to trust: it detects the backend and reads the rules.
    expect(saves(first.calls).length).toBeGreaterThanOrEqual(4);
  });

  it('a member-only change (ADD, then DEL) at Tern\'s own generation runs no process and is in the kernel', async () => {
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const add = run();
    const r = await add.applier.apply(plain(4));
    expect(add.calls).toEqual([]);
    expect(r.backend).toBe('nft');
    expect(gate(node)).toContain('add tern-ep4 10.71.0.4,tern00000000003');
    const del = run();
    await del.applier.apply(plain(3));
    expect(del.calls).toEqual([]);
    expect(gate(node)).not.toContain('10.71.0.4');
  });

  it('a batch of many member changes goes to one ipset restore, still with no save', async () => {
    const up = run();
    await up.applier.apply(plain(203));
    expect(up.calls).toEqual(['ipset']);
    expect(gate(node)).toContain('add tern-ep4 10.71.0.203,tern00000000202');
    const down = run();
    await down.applier.apply(plain(3));
    expect(down.calls).toEqual(['ipset']);
    expect(gate(node)).not.toContain('10.71.0.203');
  });

  it('a rule change at Tern\'s own generation diffs in memory: restores only, no save', async () => {
    const p = run();
    const r = await p.applier.apply(withPolicy(3));
    expect(saves(p.calls)).toEqual([]);
    expect(r.chainsWritten).toBeGreaterThan(0);
    const policyChains = withPolicy(3).v4.chains.map((c) => c.name).filter((n) => !plain(3).v4.chains.some((c) => c.name === n));
    expect(policyChains.length).toBeGreaterThan(0);
    for (const c of policyChains) expect(node.must('iptables-nft-save', ['-t', 'filter'])).toContain(`:${c} `);
    const back = run();
    await back.applier.apply(plain(3));
    expect(saves(back.calls)).toEqual([]);
    for (const c of policyChains) expect(node.must('iptables-nft-save', ['-t', 'filter'])).not.toContain(`:${c} `);
    const again = run();
    await again.applier.apply(plain(3));
    expect(again.calls).toEqual([]);
  });

  it('a foreign commit between two processes is seen: the rules are read, and Tern\'s hook that someone deleted comes back', async () => {
    const [hook] = hooks(node);
    node.must('iptables-nft', ['-D', ...splitArgs(hook.slice(3))]);
    expect(hooks(node)).not.toContain(hook);
    const p = run();
    await p.applier.apply(plain(3));
    expect(saves(p.calls).length).toBeGreaterThan(0);
    expect(hooks(node)).toContain(hook);
    // Its own write recorded again: the next process trusts it.
    const next = run();
    await next.applier.apply(plain(3));
    expect(next.calls).toEqual([]);
  });

  it('someone else\'s rule elsewhere is no reason to rewrite, but it is read', async () => {
    node.must('iptables-nft', ['-A', 'OUTPUT', '-d', '192.0.2.1', '-j', 'DROP']);
    const p = run();
    const r = await p.applier.apply(plain(3));
    expect(saves(p.calls).length).toBeGreaterThan(0);
    expect(r.chainsWritten).toBe(0);
    node.must('iptables-nft', ['-D', 'OUTPUT', '-d', '192.0.2.1', '-j', 'DROP']);
  });

  it('a set member changed behind Tern\'s back is seen (sets are read every time, never remembered)', async () => {
    await run().applier.apply(plain(3));
    node.must('ipset', ['del', 'tern-ep4', '10.71.0.2,tern00000000001']);
    node.must('ipset', ['add', 'tern-ep4', '10.71.0.99,tern00000000099']);
    const p = run();
    await p.applier.apply(plain(3));
    expect(p.calls).toEqual([]);
    expect(gate(node)).toContain('add tern-ep4 10.71.0.2,tern00000000001');
    expect(gate(node)).not.toContain('10.71.0.99');
  });

  it.each([
    ['garbage', () => 'not json{'],
    ['another format', (t: string) => t.replace('"format":1', '"format":99')],
    ['an older generation', (t: string) => t.replace(/"gen":(\d+)/, (_, g) => `"gen":${Number(g) - 1}`)],
    ['rules edited but not their digest', (t: string) => t.replace('tern-ep4 src,src -j DROP', 'tern-ep4 src,src -j ACCEPT')],
    ['another gate set seed', (t: string) => t.replace(/"tern-ep4":(\d+)/, (_, v) => `"tern-ep4":${(Number(v) + 1) >>> 0}`)],
  ])('a record with %s is ignored: the rules are read and the record rewritten', async (_what, edit) => {
    await run().applier.apply(plain(3));
    const good = fs.readFileSync(file, 'utf8');
    const bad = edit(good);
    expect(bad).not.toBe(good);
    fs.writeFileSync(file, bad);
    const p = run();
    await p.applier.apply(plain(3));
    expect(saves(p.calls).length).toBeGreaterThanOrEqual(4);
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).gen).toBe(await nftGeneration(node.path));
  });

  it('a record of an earlier namespace (same inode, same generation) is not trusted: the new namespace gets its rules', async () => {
    await run().applier.apply(plain(3));
    const record = JSON.parse(fs.readFileSync(file, 'utf8'));
    const fresh = sb.netns('fresh');
    // Bring the fresh namespace to the recorded generation with foreign commits, and hand it the old record.
    while ((await nftGeneration(fresh.path)) < record.gen) fresh.must('iptables-nft', ['-A', 'OUTPUT', '-d', '192.0.2.1', '-j', 'ACCEPT']);
    expect(await nftGeneration(fresh.path)).toBe(record.gen);
    const freshFile = path.join(dir, 'fresh.json');
    fs.writeFileSync(freshFile, JSON.stringify(record));
    const r = await process1(fresh, freshFile, path.join(dir, 'fresh.lock')).applier.apply(plain(3));
    expect(r.backend).toBe('nft');
    expect(hooks(fresh).length).toBeGreaterThan(0);
    expect(fresh.must('iptables-nft-save', ['-t', 'filter'])).toMatch(/tern-ep4 src,src -j DROP/);
  });
});

describe('a host on legacy iptables', () => {
  let legacy: Netns;
  beforeAll(() => {
    legacy = sb.netns('legacy');
    for (let i = 1; i <= 3; i++) legacy.must('iptables-legacy', ['-A', 'INPUT', '-s', `192.0.2.${i}`, '-j', 'ACCEPT']);
  });

  it('gets legacy from every process; nothing is recorded, so each one detects', async () => {
    const f = path.join(dir, 'legacy.json');
    const l = path.join(dir, 'legacy.lock');
    for (const n of [2, 3, 2]) {
      const p = process1(legacy, f, l);
      const r = await p.applier.apply(plain(n));
      expect(r.backend).toBe('legacy');
      expect(saves(p.calls).filter((c) => c.includes('nft')).length).toBe(2); // the detection's look at nft
      expect(fs.existsSync(f)).toBe(false);
    }
    expect(hooks(legacy, 'iptables-legacy-save').length).toBeGreaterThan(0);
    expect(hooks(legacy)).toEqual([]);
    expect(legacy.must('ipset', ['save', 'tern-ep4'])).toContain('10.71.0.2,');
    expect(legacy.must('ipset', ['save', 'tern-ep4'])).not.toContain('10.71.0.3,');
  });

  it('a stale nft record does not pull a legacy host onto nft', async () => {
    const f = path.join(dir, 'legacy2.json');
    fs.copyFileSync(file, f);
    const r = await process1(legacy, f, path.join(dir, 'legacy.lock')).applier.apply(plain(2));
    expect(r.backend).toBe('legacy');
    expect(hooks(legacy)).toEqual([]);
  });
});

/** An iptables-save rule's arguments (quotes as the shell would take them). */
function splitArgs(s: string): string[] {
  return (s.match(/"[^"]*"|\S+/g) ?? []).map((a) => a.replace(/^"|"$/g, ''));
}
