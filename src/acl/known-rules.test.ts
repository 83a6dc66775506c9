import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileRuleset } from './compile';
import { toInput } from './state';
import type { Resource } from './parse';
import { decodeKnown, encodeKnown, fileMemory, type KnownRules } from './known-rules';

const ep = (i: number): Resource => ({ kind: 'Endpoint', key: `ns/p${i}`, value: { name: `p${i}`, namespace: 'ns', labels: {}, ips: [`10.0.0.${i}`], hostIface: `tern${i}`, namedPorts: [] } });
const known: KnownRules = { gen: 42, rs: compileRuleset(toInput([ep(1), ep(2)])), gates: { 'tern-ep4': 7, 'tern-ep6': 8 } };

describe('the record of the last apply', () => {
  it('reads back what was written: generation, gates, rules and hooks (sets are not kept)', () => {
    const back = decodeKnown(encodeKnown(known))!;
    expect(back.gen).toBe(42);
    expect(back.gates).toEqual(known.gates);
    for (const f of ['v4', 'v6'] as const) {
      expect(back.rs[f].chains).toEqual(known.rs[f].chains);
      expect(back.rs[f].hooks).toEqual(known.rs[f].hooks);
      expect(back.rs[f].sets).toEqual([]);
    }
  });

  const edit = (f: (j: any) => void) => {
    const j = JSON.parse(encodeKnown(known));
    f(j);
    return JSON.stringify(j);
  };
  it.each<[string, string]>([
    ['empty', ''],
    ['not JSON', '{"format":1,'],
    ['null', 'null'],
    ['another format', edit((j) => (j.format = 2))],
    ['no generation', edit((j) => delete j.gen)],
    ['a fractional generation', edit((j) => (j.gen = 1.5))],
    ['no gate sets', edit((j) => (j.gates = {}))],
    ['a gate seed that is no number', edit((j) => (j.gates['tern-ep4'] = '7'))],
    ['a family missing', edit((j) => delete j.rs.v6)],
    ['families swapped', edit((j) => ([j.rs.v4, j.rs.v6] = [j.rs.v6, j.rs.v4]))],
    ['a rule that is no string', edit((j) => (j.rs.v4.chains[0].rules[0] = 1))],
    ['a rule changed (digest no longer matches)', edit((j) => (j.rs.v4.chains[0].rules[0] += ' -j ACCEPT'))],
    ['a hook changed', edit((j) => (j.rs.v4.hooks[0].target = 'ACCEPT'))],
    ['a digest of another build', edit((j) => (j.digest = '0'.repeat(64)))],
  ])('is ignored when %s', (_what, text) => {
    expect(decodeKnown(text)).toBeUndefined();
  });
});

describe('the record file', () => {
  it('round-trips, is root-only, and a record that cannot be written fails nothing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'known-'));
    try {
      const m = fileMemory(path.join(dir, 'sub', 'k.json'));
      expect(m.load()).toBeUndefined();
      m.save(known);
      expect(m.load()?.gen).toBe(42);
      expect(fs.statSync(path.join(dir, 'sub', 'k.json')).mode & 0o777).toBe(0o600);
      m.save(undefined);
      expect(m.load()).toBeUndefined();
      fs.writeFileSync(path.join(dir, 'file'), '');
      const blocked = fileMemory(path.join(dir, 'file', 'k.json')); // a parent that is a file: nothing can be written
      expect(() => blocked.save(known)).not.toThrow();
      expect(blocked.load()).toBeUndefined();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
