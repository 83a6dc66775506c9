import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { parsePolicyText, type Resource } from './parse';
import { compileRuleset } from './compile';
import { renderIptables, renderIpsets } from './render';
import { PolicyState, toInput, type Update } from './state';
import type { Endpoint } from './model';

const GOLDEN = path.join(__dirname, '__golden__');

function render(resources: Iterable<Resource>): string {
  const rs = compileRuleset(toInput(resources));
  return [4, 6].map((f) => {
    const fam = f === 4 ? rs.v4 : rs.v6;
    return `### iptables v${f}\n${renderIptables(fam)}### ipset v${f}\n${renderIpsets(fam)}`;
  }).join('');
}

describe('compiler golden files', () => {
  for (const f of fs.readdirSync(GOLDEN).filter((x) => x.endsWith('.yaml'))) {
    it(f, () => {
      const resources = parsePolicyText(fs.readFileSync(path.join(GOLDEN, f), 'utf8'), f);
      const got = render(resources);
      const want = path.join(GOLDEN, f.replace(/\.yaml$/, '.golden'));
      // Regenerating is an explicit command (`npm run golden`), never a side effect of a
      // missing file, and never in CI: a golden that is not there fails.
      if (process.env.UPDATE_GOLDEN === '1' && !process.env.CI) fs.writeFileSync(want, got);
      expect(fs.existsSync(want), `missing golden file ${path.relative(process.cwd(), want)} (npm run golden writes it)`).toBe(true);
      expect(got).toBe(fs.readFileSync(want, 'utf8'));
    });
  }
});

describe('compiler invariants', () => {
  const base = parsePolicyText(fs.readFileSync(path.join(GOLDEN, 'k8s-basic.yaml'), 'utf8'), 'k8s-basic.yaml');
  const ep = (i: number): Resource => ({
    kind: 'Endpoint',
    key: `shop/p${i}`,
    value: { name: `p${i}`, namespace: 'shop', labels: { app: i % 2 ? 'web' : 'client' }, ips: [`10.1.0.${i}`], hostIface: `tern${String(i).padStart(11, '0')}`, namedPorts: [{ name: 'http-alt', protocol: 6, port: 8000 + i }] },
  });

  it('a pod joining or leaving changes set members and its own chains, no other rule', () => {
    const pod = (i: number): Resource => ({ kind: 'Endpoint', key: ep(i).key, value: { ...(ep(i).value as Endpoint), hostIface: `ternf${String(i).padStart(10, '0')}` } });
    const without = compileRuleset(toInput(base));
    const withPods = compileRuleset(toInput([...base, pod(1), pod(2), pod(3)]));
    // What a join may touch: the dispatch (tern-to-wl, tern-from-wl, their device-group and name trees) and the new pods' own chains.
    const dispatch = /^tern-(tw|fw)[dg]-|^tern-(tw|fw)n$/;
    const own = (name: string) => /^tern-(to|from)-wl$|^tern-(tw|fw)-ternf/.test(name) || dispatch.test(name);
    for (const fam of ['v4', 'v6'] as const) {
      expect(withPods[fam].chains.filter((c) => !own(c.name))).toEqual(without[fam].chains.filter((c) => !own(c.name)));
      expect(withPods[fam].sets.map((s) => s.name)).toEqual(without[fam].sets.map((s) => s.name));
    }
    const added = withPods.v4.chains.filter((c) => !without.v4.chains.some((w) => w.name === c.name) && !dispatch.test(c.name)).map((c) => c.name);
    expect(added.sort()).toEqual([1, 2, 3].flatMap((i) => [`tern-fw-ternf000000000${i}`]).concat([1, 2, 3].map((i) => `tern-tw-ternf000000000${i}`)));
    expect(withPods.v4.sets.flatMap((s) => s.members).length).toBeGreaterThan(without.v4.sets.flatMap((s) => s.members).length);
  });

  it('endpoint chains only for this node\'s endpoints', () => {
    const onNode = (i: number, node?: string): Resource => ({ kind: 'Endpoint', key: ep(i).key, value: { ...(ep(i).value as Endpoint), hostIface: `ternf${String(i).padStart(10, '0')}`, node } });
    const rs = compileRuleset(toInput([...base, onNode(1, 'a'), onNode(3, 'b'), onNode(5)]), { node: 'a' });
    const names = rs.v4.chains.map((c) => c.name).filter((n) => /^tern-tw-ternf/.test(n));
    expect(names).toEqual(['tern-tw-ternf0000000001', 'tern-tw-ternf0000000005']); // node b's pod has none; a record without a node counts as local
    // ...but a remote pod is still in the sets other rules match on, and in the gate.
    expect(rs.v4.sets.find((s) => s.name === 'tern-ep4')!.members).toContain('10.1.0.3/32,ternf0000000003');
  });

  it('every rule carries a distinct hash comment', () => {
    const text = renderIptables(compileRuleset(toInput(base)).v4);
    const hashes = [...text.matchAll(/--comment "tern:([0-9a-f]{16})"/g)].map((m) => m[1]);
    const ruleLines = text.split('\n').filter((l) => l.startsWith('-A '));
    expect(hashes.length).toBe(ruleLines.length);
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it('chain and set names fit the kernel limits', () => {
    const rs = compileRuleset(toInput(base));
    for (const fam of [rs.v4, rs.v6]) {
      for (const c of fam.chains) expect(c.name.length).toBeLessThanOrEqual(28);
      for (const s of fam.sets) expect((s.name + '-t').length).toBeLessThanOrEqual(31);
    }
  });

  it('results do not depend on the order updates arrive (reversed, split, squashed, shuffled)', () => {
    const tiers = parsePolicyText(fs.readFileSync(path.join(GOLDEN, 'tern-tiers.yaml'), 'utf8'), 'tern-tiers.yaml');
    const all = [...base, ...tiers, ep(1), ep(2), ep(3), ep(4)];
    const want = render(all);
    const ups: Update[] = all.map((r) => ({ op: 'upsert', resource: r }));
    // Some churn that ends where it started: a pod added then removed, a policy deleted and re-added.
    const churn: Update[] = [{ op: 'upsert', resource: ep(9) }, { op: 'delete', kind: 'Endpoint', key: 'shop/p9' }];
    const replay = (batches: Update[][]) => {
      const st = new PolicyState();
      let last = '';
      for (const b of batches) {
        st.apply(b);
        last = render(st.resources()); // compile between batches, as a daemon would
      }
      return last;
    };
    expect(replay([ups])).toBe(want); // squashed
    expect(replay([[...ups].reverse()])).toBe(want); // reversed
    expect(replay([ups.slice(0, 5), ups.slice(5, 11), ups.slice(11)])).toBe(want); // split
    expect(replay([ups, churn])).toBe(want);
    fc.assert(
      fc.property(fc.shuffledSubarray(ups, { minLength: ups.length, maxLength: ups.length }), fc.integer({ min: 1, max: ups.length }), (shuffled, cut) => {
        expect(replay([shuffled.slice(0, cut), shuffled.slice(cut)])).toBe(want);
      }),
      { numRuns: 30 },
    );
  });
});
