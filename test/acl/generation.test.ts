import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, Sandbox, type Netns } from '../sandbox';
import { netnsExec, type Exec } from '../../src/dataplane/exec';
import { nftGeneration } from '../../src/dataplane/nft-gen';
import { Applier, compileRuleset, parsePolicyText, toInput, type Endpoint, type Resource } from '../../src/acl';

/**
 * An apply reads no iptables rules when the namespace's nf_tables generation
 * has not moved since they were last read and found equal, or since the
 * applier's own write moved it by exactly its own commits: the generation is
 * bumped by every commit to any table, so it cannot miss a change. Sets are
 * read every time (ipset has no generation).
 */
const sb = new Sandbox('agen');
let node: Netns;
let other: Netns;

const POLICIES = fs.readFileSync(path.join(REPO, 'docs', 'examples', 'tenant-isolation.yaml'), 'utf8');
function endpoints(n: number): Resource[] {
  return Array.from({ length: n }, (_, i) => {
    const e: Endpoint = { name: `p${i}`, namespace: i % 2 ? 'alpha' : 'beta', labels: { app: 'web' }, ips: [`10.70.0.${i + 1}`], hostIface: `tern${String(i).padStart(11, '0')}`, namedPorts: [] };
    return { kind: 'Endpoint', key: `${e.namespace}/${e.name}`, value: e };
  });
}
const ruleset = (extra = '') => compileRuleset(toInput([...parsePolicyText(POLICIES + extra, 'p.yaml'), ...endpoints(12)]));

/** The applier's tool calls, by command (` --test` added for a check). */
function recording(ns: Netns): { exec: Exec; calls: string[] } {
  const base = netnsExec(ns.path);
  const calls: string[] = [];
  return { calls, exec: (cmd, args, input) => (calls.push(args.includes('--test') ? `${cmd} --test` : cmd), base(cmd, args, input)) };
}
const saves = (calls: string[]) => calls.filter((c) => /tables-(nft|legacy)-save$/.test(c)).length;

beforeAll(() => {
  node = sb.netns('node');
  other = sb.netns('other');
});
afterAll(() => sb.cleanup());

describe('nf_tables generation', () => {
  it('moves with every commit in its own namespace only, not with reads or --test', async () => {
    const g0 = await nftGeneration(node.path);
    expect(await nftGeneration(node.path)).toBe(g0);
    node.must('iptables-nft-save', []);
    node.must('iptables-nft', ['-L', '-n']);
    node.must('iptables-nft-restore', ['--noflush', '--test'], { input: '*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n' });
    expect(await nftGeneration(node.path)).toBe(g0);
    other.must('iptables-nft', ['-A', 'FORWARD', '-j', 'ACCEPT']);
    expect(await nftGeneration(node.path)).toBe(g0);
    node.must('iptables-nft', ['-A', 'FORWARD', '-j', 'ACCEPT']);
    expect(await nftGeneration(node.path)).toBeGreaterThan(g0);
    node.must('iptables-nft', ['-D', 'FORWARD', '-j', 'ACCEPT']);
  });

  it('moves by exactly one per iptables-nft-restore, whatever the batch holds', async () => {
    const g0 = await nftGeneration(node.path);
    node.must('iptables-nft-restore', ['--noflush'], { input: '*filter\n:gen-a - [0:0]\n:gen-b - [0:0]\n-A gen-a -j RETURN\n-A gen-b -j gen-a\n-I FORWARD 1 -j gen-b\nCOMMIT\n' });
    expect(await nftGeneration(node.path)).toBe(g0 + 1);
    node.must('ip6tables-nft-restore', ['--noflush'], { input: '*filter\n:gen-a - [0:0]\n-A gen-a -j RETURN\nCOMMIT\n' });
    expect(await nftGeneration(node.path)).toBe(g0 + 2);
    node.must('iptables-nft-restore', ['--noflush'], { input: '*filter\n-D FORWARD -j gen-b\n:gen-a - [0:0]\n:gen-b - [0:0]\n-X gen-a\n-X gen-b\nCOMMIT\n' });
    node.must('ip6tables-nft-restore', ['--noflush'], { input: '*filter\n:gen-a - [0:0]\n-X gen-a\nCOMMIT\n' });
    expect(await nftGeneration(node.path)).toBe(g0 + 4);
  });
});

describe('a resync of unchanged rules', () => {
  let rec: ReturnType<typeof recording>;
  let applier: Applier;
  beforeAll(() => {
    rec = recording(node);
    applier = new Applier({ netnsPath: node.path, backend: 'nft', exec: rec.exec, generation: () => nftGeneration(node.path), lockFile: path.join('/tmp', `${sb.prefix}-gen.lock`) });
  });
  const kernelRules = () => node.must('iptables-nft-save', ['-t', 'filter']).replace(/^#.*\n/gm, '').replace(/\[\d+:\d+\]/g, '');

  it('reads no rules after its own write, only the sets, while nothing else commits', async () => {
    const rs = ruleset();
    expect((await applier.apply(rs)).chainsWritten).toBeGreaterThan(0);
    for (let i = 0; i < 3; i++) {
      rec.calls.length = 0;
      const r = await applier.apply(ruleset()); // compiled again: same rules, another object
      expect(r.chainsWritten + r.setsWritten).toBe(0);
      expect(saves(rec.calls)).toBe(0);
      expect(rec.calls).toContain('ipset');
    }
  });

  it('a rule deleted by hand moves the generation: the next resync reads and restores it', async () => {
    const before = kernelRules();
    const victim = before.split('\n').find((l) => l.startsWith('-A tern-FORWARD'))!;
    node.must('iptables-nft', ['-t', 'filter', ...victim.replace(/"/g, '').split(' ').map((w) => (w === '-A' ? '-D' : w))]);
    expect(kernelRules()).not.toBe(before);
    rec.calls.length = 0;
    const r = await applier.apply(ruleset());
    expect(saves(rec.calls)).toBe(2);
    expect(r.chainsWritten).toBeGreaterThan(0);
    expect(kernelRules()).toBe(before);
  });

  it('a change by anyone else in the namespace (another table) also makes it read the rules', async () => {
    await applier.apply(ruleset()); // read, equal: trusted again
    node.must('iptables-nft', ['-t', 'mangle', '-A', 'PREROUTING', '-j', 'ACCEPT']);
    rec.calls.length = 0;
    await applier.apply(ruleset());
    expect(saves(rec.calls)).toBe(2);
    node.must('iptables-nft', ['-t', 'mangle', '-D', 'PREROUTING', '-j', 'ACCEPT']);
  });

  it('a set member removed by hand is put back with the generation unchanged', async () => {
    await applier.apply(ruleset());
    await applier.apply(ruleset());
    node.must('ipset', ['del', 'tern-ep4', '10.70.0.1,tern00000000000']);
    rec.calls.length = 0;
    const r = await applier.apply(ruleset());
    expect(saves(rec.calls)).toBe(0);
    expect(r.setsWritten).toBeGreaterThan(0);
    expect(node.must('ipset', ['test', 'tern-ep4', '10.70.0.1,tern00000000000'])).toBeDefined();
  });

  it('other rules (a new policy) at a known generation are written as the difference from the known rules, with no read', async () => {
    await applier.apply(ruleset());
    rec.calls.length = 0;
    const r = await applier.apply(ruleset(extra(4444)));
    expect(saves(rec.calls)).toBe(0);
    expect(r.chainsWritten).toBeGreaterThan(0);
    expect(await freshWrites(ruleset(extra(4444)))).toBe(0);
  });
});

/** A policy that selects every pod, with its own peer selector (so a new set each time `k` changes). */
const extra = (k: number) => `---\napiVersion: tern.io/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: extra}\nspec:\n  selector: all()\n  ingress: [{action: Allow, protocol: TCP, source: {selector: peer == "p${k}"}, destination: {ports: [${k}]}}, {action: Deny, protocol: UDP}, {action: Allow}]\n`;

/** Chains an applier that knows nothing (it reads the rules) would write: 0 when the kernel holds exactly `rs`. */
async function freshWrites(rs: ReturnType<typeof ruleset>): Promise<number> {
  const fresh = new Applier({ netnsPath: node.path, backend: 'nft', exec: netnsExec(node.path), lockFile: path.join('/tmp', `${sb.prefix}-gen.lock`) });
  const r = await fresh.apply(rs);
  return r.chainsWritten;
}

describe('after its own write', () => {
  let rec: ReturnType<typeof recording>;
  let applier: Applier;
  /** Runs between the generation read and the rules write of the apply in progress (the new sets are created first). */
  let onCreate: (() => void) | undefined;
  beforeAll(() => {
    rec = recording(node);
    applier = new Applier({
      netnsPath: node.path,
      backend: 'nft',
      exec: rec.exec,
      generation: () => nftGeneration(node.path),
      lockFile: path.join('/tmp', `${sb.prefix}-gen.lock`),
      afterStep: (step) => {
        if (step === 'create') onCreate?.();
      },
    });
  });

  it('policy edits in a row read no rules: the generation moved by its own commits only', async () => {
    await applier.apply(ruleset(extra(5000)));
    for (let k = 5001; k < 5005; k++) {
      rec.calls.length = 0;
      const r = await applier.apply(ruleset(extra(k)));
      expect(r.chainsWritten).toBeGreaterThan(0);
      expect(saves(rec.calls)).toBe(0);
      expect(rec.calls.filter((c) => c.endsWith('--test'))).toEqual([]); // one restore, no set change before it: it is its own check
      expect(await freshWrites(ruleset(extra(k)))).toBe(0); // a read-only check: commits nothing, trust is kept
    }
  });

  it('a rule deleted or inserted by someone else between two edits is seen and put right by the next one', async () => {
    await applier.apply(ruleset(extra(5100)));
    const victim = node.must('iptables-nft-save', ['-t', 'filter']).split('\n').find((l) => l.startsWith('-A tern-FORWARD'))!;
    node.must('iptables-nft', ['-t', 'filter', ...victim.replace(/"/g, '').split(' ').map((w) => (w === '-A' ? '-D' : w))]);
    rec.calls.length = 0;
    await applier.apply(ruleset(extra(5101)));
    expect(saves(rec.calls)).toBe(2);
    expect(await freshWrites(ruleset(extra(5101)))).toBe(0);
    node.must('iptables-nft', ['-I', 'tern-INPUT', '1', '-j', 'ACCEPT']);
    rec.calls.length = 0;
    await applier.apply(ruleset(extra(5102)));
    expect(saves(rec.calls)).toBe(2);
    expect(await freshWrites(ruleset(extra(5102)))).toBe(0);
  });

  it('a foreign rule committed while an edit is being applied is not trusted away: the next resync reads and removes it', async () => {
    await applier.apply(ruleset(extra(5200)));
    // tern-INPUT is not rewritten by the edit: only a read can find this rule.
    onCreate = () => node.must('iptables-nft', ['-I', 'tern-INPUT', '1', '-j', 'ACCEPT']);
    try {
      await applier.apply(ruleset(extra(5201)));
    } finally {
      onCreate = undefined;
    }
    expect(node.must('iptables-nft', ['-S', 'tern-INPUT'])).toContain('-A tern-INPUT -j ACCEPT');
    rec.calls.length = 0;
    const r = await applier.apply(ruleset(extra(5201))); // the periodic resync: same rules
    expect(saves(rec.calls)).toBe(2);
    expect(r.chainsWritten).toBe(1);
    expect(node.must('iptables-nft', ['-S', 'tern-INPUT'])).not.toContain('-A tern-INPUT -j ACCEPT');
    expect(await freshWrites(ruleset(extra(5201)))).toBe(0);
  });

  it('a write the kernel refuses (unchecked: one restore, no set change) changes nothing, and the next apply reads the rules', async () => {
    const withExtra = ruleset(extra(5300));
    await applier.apply(withExtra);
    const plain = new Set(ruleset().v4.chains.map((c) => c.name));
    const policyChain = withExtra.v4.chains.map((c) => c.name).find((n) => n.startsWith('tern-pi-') && !plain.has(n))!;
    expect(policyChain).toBeDefined();
    // A chain of someone else's jumps to the policy chain: deleting it is refused (EBUSY).
    node.must('iptables-nft', ['-N', 'foreign-ref']);
    node.must('iptables-nft', ['-A', 'foreign-ref', '-j', policyChain]);
    const before = node.must('iptables-nft-save', ['-t', 'filter']).replace(/^#.*\n/gm, '');
    const setsBefore = node.must('ipset', ['save']);
    rec.calls.length = 0;
    await expect(applier.apply(ruleset())).rejects.toThrow();
    expect(rec.calls.filter((c) => c.endsWith('--test'))).toEqual([]);
    expect(node.must('iptables-nft-save', ['-t', 'filter']).replace(/^#.*\n/gm, '')).toBe(before);
    expect(node.must('ipset', ['save'])).toBe(setsBefore);
    node.must('iptables-nft', ['-F', 'foreign-ref']);
    node.must('iptables-nft', ['-X', 'foreign-ref']);
    rec.calls.length = 0;
    await applier.apply(ruleset());
    expect(saves(rec.calls)).toBe(2);
    expect(await freshWrites(ruleset())).toBe(0);
  });
});
