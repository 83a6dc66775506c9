import { describe, it, expect } from 'vitest';
import { hookPackets, parseCounters, rulesTraversed } from './counters';

/** `iptables -L -v -x -n` as iptables-nft prints it, before and after one packet. */
const listing = (c: number[]) => `Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
${c[0]} 60 tern-FORWARD  0    --  *      *       0.0.0.0/0            0.0.0.0/0            /* tern:hook */

Chain tern-FORWARD (1 references)
    pkts      bytes target     prot opt in     out     source               destination
${c[1]} 0 ACCEPT     0    --  tern+  *       0.0.0.0/0            0.0.0.0/0            /* tern:aa */ ctstate RELATED,ESTABLISHED
${c[2]} 60 tern-from-wl  0    --  tern+  *       0.0.0.0/0            0.0.0.0/0            /* tern:bb */
${c[3]} 60 ACCEPT     0    --  tern+  *       0.0.0.0/0            0.0.0.0/0            /* tern:cc */

Chain tern-from-wl (1 references)
    pkts      bytes target     prot opt in     out     source               destination
${c[4]} 60 MARK       0    --  *      *       0.0.0.0/0            0.0.0.0/0            /* tern:dd */ MARK and 0xfffcffff
${c[5]} 0 tern-fw-a  0    --  terna  *       0.0.0.0/0            0.0.0.0/0           [goto]  /* tern:ee */
${c[6]} 60 tern-fw-b  0    --  ternb  *       0.0.0.0/0            0.0.0.0/0           [goto]  /* tern:ff */

Chain tern-fw-a (1 references)
    pkts      bytes target     prot opt in     out     source               destination
${c[7]} 0 DROP       6    --  *      *       0.0.0.0/0            0.0.0.0/0            /* tern:11 */

Chain tern-fw-b (1 references)
    pkts      bytes target     prot opt in     out     source               destination
${c[8]} 0 DROP       6    --  *      *       0.0.0.0/0            0.0.0.0/0            /* tern:22 */ tcp dpt:22
${c[9]} 0 RETURN     0    --  *      *       0.0.0.0/0            0.0.0.0/0            /* tern:33 */ mark match 0x0/0x10000
`;

describe('rules traversed, from kernel counters', () => {
  const before = parseCounters(listing([5, 4, 1, 1, 1, 0, 1, 0, 0, 0].map((x) => x * 7)));
  it('parses chains, counters, targets and gotos', () => {
    expect(before.get('tern-from-wl')!.map((r) => [r.target, r.goto])).toEqual([['MARK', false], ['tern-fw-a', true], ['tern-fw-b', true]]);
    expect(before.get('FORWARD')![0].pkts).toBe(35);
  });
  it('walks matched jumps, stops at the verdict, and a goto chain ending returns past its caller', () => {
    // One packet: hook, from-wl, MARK, goto fw-b, no match in fw-b (ends: back to tern-FORWARD), then ACCEPT.
    const after = parseCounters(listing([36, 28, 8, 8, 8, 0, 8, 0, 0, 0]));
    expect(hookPackets(before, after, 'FORWARD', 'tern-FORWARD')).toBe(1);
    // FORWARD 1 + tern-FORWARD 3 (established, from-wl, ACCEPT) + from-wl 3 + fw-b 2
    expect(rulesTraversed(before, after, 'FORWARD')).toBe(9);
  });
  it('a RETURN that matched ends its chain there', () => {
    const after = parseCounters(listing([36, 28, 8, 8, 8, 0, 8, 0, 0, 1]));
    expect(rulesTraversed(before, after, 'FORWARD')).toBe(9);
    const dropped = parseCounters(listing([36, 28, 8, 7, 8, 0, 8, 0, 1, 0]));
    expect(rulesTraversed(before, dropped, 'FORWARD')).toBe(1 + 2 + 3 + 1); // DROP in fw-b ends everything
  });
});
