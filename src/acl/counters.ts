/**
 * Rules one packet traversed, from the kernel's own packet counters (pure; the
 * caller runs `iptables -t filter -L -v -x -n` before and after sending the
 * packet, with nothing else crossing the hook). A rule's counter grows only
 * when the packet matched it; the rules the packet was checked against are
 * those up to the one that ended each chain it entered: ACCEPT or DROP, a
 * RETURN, the end of a chain reached by goto (which returns from its caller
 * too), or the chain's end. Used to hold the simulator's count to the kernel.
 */
import { TernError } from '../lib/errors';

export interface CountedRule {
  pkts: number;
  target: string;
  goto: boolean;
}

/** `iptables -L -v -x -n` output -> chain -> rules with their packet counters, in order. */
export function parseCounters(text: string): Map<string, CountedRule[]> {
  const chains = new Map<string, CountedRule[]>();
  let cur: CountedRule[] | undefined;
  for (const line of text.split('\n')) {
    const head = /^Chain (\S+)/.exec(line);
    if (head) chains.set(head[1], (cur = []));
    else {
      const f = line.trim().split(/\s+/);
      if (cur && /^\d+$/.test(f[0] ?? '')) cur.push({ pkts: Number(f[0]), target: f[2], goto: line.includes('[goto]') });
    }
  }
  return chains;
}

/** Packets that crossed `chain`'s rule jumping to `target` between two listings. */
export function hookPackets(before: Map<string, CountedRule[]>, after: Map<string, CountedRule[]>, chain: string, target: string): number {
  const pk = (m: Map<string, CountedRule[]>) => m.get(chain)?.find((r) => r.target === target)?.pkts ?? 0;
  return pk(after) - pk(before);
}

/** Rules the one packet between the two listings was checked against, from `start` (a hook chain). */
export function rulesTraversed(before: Map<string, CountedRule[]>, after: Map<string, CountedRule[]>, start: string): number {
  let n = 0;
  const walk = (chain: string, depth: number): 'final' | 'return' => {
    const rules = after.get(chain);
    if (!rules || depth > 32) throw new TernError('INTERNAL', `counters: ${rules ? 'chain loop' : `no chain ${chain}`}`);
    for (let i = 0; i < rules.length; i++) {
      n++;
      const r = rules[i];
      if (r.pkts === (before.get(chain)?.[i]?.pkts ?? 0)) continue; // checked, not matched
      if (r.target === 'ACCEPT' || r.target === 'DROP') return 'final';
      if (r.target === 'RETURN') return 'return';
      if (r.target === 'MARK' || r.target === 'LOG') continue;
      const v = walk(r.target, depth + 1);
      if (v === 'final' || r.goto) return v;
    }
    return 'return';
  };
  walk(start, 0);
  return n;
}
