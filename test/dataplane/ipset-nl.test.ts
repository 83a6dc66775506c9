/**
 * Member writes over netlink against the real kernel, in a sandbox namespace:
 * what `ipset save` shows afterwards is what `ipset restore` of the same lines
 * gives in a second namespace, `-exist` semantics hold, and a refused write
 * names the set and member and stops the batch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, type Netns } from '../sandbox';
import { applyMemberOps, listSets } from '../../src/dataplane/ipset-nl';
import { parseIpsetSave } from '../../src/acl/applier';
import type { MemberOp } from '../../src/dataplane/ipset-codec';

const SETS = ['create x-ni4 hash:net,iface family inet', 'create x-ni6 hash:net,iface family inet6', 'create x-ip6 hash:ip family inet6', 'create x-ipp hash:ip,port family inet', 'create x-net hash:net family inet'];
const OPS: MemberOp[] = [
  { op: 'add', set: 'x-ni4', type: 'hash:net,iface', member: '10.77.0.30/32,tern0000000001e' },
  { op: 'add', set: 'x-ni6', type: 'hash:net,iface', member: 'fd00:77::1e/128,tern0000000001e' },
  { op: 'add', set: 'x-ip6', type: 'hash:ip', member: 'fd00:77::1e' },
  { op: 'add', set: 'x-ip6', type: 'hash:ip', member: '::1' },
  { op: 'add', set: 'x-ipp', type: 'hash:ip,port', member: '10.77.0.30,tcp:8080' },
  { op: 'add', set: 'x-ipp', type: 'hash:ip,port', member: '10.77.0.30,udp:53' },
  { op: 'add', set: 'x-ipp', type: 'hash:ip,port', member: '10.77.0.31,sctp:3868' },
  { op: 'add', set: 'x-net', type: 'hash:net', member: '10.96.0.0/12' },
  { op: 'del', set: 'x-ipp', type: 'hash:ip,port', member: '10.77.0.30,udp:53' },
];

describe('ipset members over netlink', () => {
  const sb = new Sandbox('ipsnl');
  let viaNetlink: Netns;
  let viaTool: Netns;
  const members = (ns: Netns) => ns.must('ipset', ['save']).split('\n').filter((l) => l.startsWith('add ')).sort();

  beforeAll(() => {
    viaNetlink = sb.netns('nl');
    viaTool = sb.netns('tool');
    for (const ns of [viaNetlink, viaTool]) ns.must('ipset', ['restore'], { input: SETS.join('\n') + '\n' });
  });
  afterAll(async () => {
    await sb.cleanup();
  });

  it('leaves the kernel as ipset restore of the same lines does, for every set type', async () => {
    await applyMemberOps(OPS, viaNetlink.path);
    viaTool.must('ipset', ['restore', '-exist'], { input: OPS.map((o) => `${o.op} ${o.set} ${o.member}`).join('\n') + '\n' });
    expect(members(viaNetlink)).toEqual(members(viaTool));
    expect(members(viaNetlink)).toHaveLength(OPS.length - 2); // one add undone by the del
  });

  it('adding a present member and deleting an absent one are not errors (-exist)', async () => {
    const before = members(viaNetlink);
    await applyMemberOps([OPS[0], { ...OPS[8] }, { op: 'del', set: 'x-ip6', type: 'hash:ip', member: 'fd00:77::99' }], viaNetlink.path);
    expect(members(viaNetlink)).toEqual(before);
  });

  it('a refused write names the set and member, and nothing after it is sent', async () => {
    const before = members(viaNetlink);
    const batch: MemberOp[] = [
      { op: 'add', set: 'x-no-such-set', type: 'hash:ip', member: '10.0.0.1' },
      { op: 'add', set: 'x-ip6', type: 'hash:ip', member: 'fd00:77::2' },
    ];
    await expect(applyMemberOps(batch, viaNetlink.path)).rejects.toThrow(/ipset add x-no-such-set 10\.0\.0\.1: ENOENT \(no such set\)/);
    // An IPv4 member in an IPv6 set: the kernel refuses it with ipset's own code (not an errno Node can name).
    await expect(applyMemberOps([{ op: 'add', set: 'x-ip6', type: 'hash:ip', member: '10.0.0.1' }], viaNetlink.path)).rejects.toThrow(/ipset add x-ip6 10\.0\.0\.1: 4097 \(protocol error/);
    expect(members(viaNetlink)).toEqual(before);
  });

  it('a malformed member is refused before anything is sent', async () => {
    const before = members(viaNetlink);
    await expect(applyMemberOps([{ op: 'add', set: 'x-ip6', type: 'hash:ip', member: 'fd00:77::3' }, { op: 'add', set: 'x-ipp', type: 'hash:ip,port', member: '10.0.0.1,icmp:8' }], viaNetlink.path)).rejects.toThrow(/PROTO:PORT/);
    expect(members(viaNetlink)).toEqual(before);
  });

  it('a listing over netlink reads every set as ipset save prints it, a set of thousands of members (many messages) included', async () => {
    const big = ['create x-big hash:net,iface family inet hashsize 1024 maxelem 1048576'];
    for (let i = 0; i < 4000; i++) big.push(`add x-big 10.${80 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32,tern${String(i).padStart(11, '0')}`);
    big.push('add x-big 10.99.0.0/24,eth0', 'add x-ni6 fd00::/64,eth1');
    for (const a of ['fd00:0:0:0::5', '::ffff:10.0.0.1', '::10.0.0.1', '2001:db8:0:0:1:0:0:1', 'fd00:0:0:1::', '2001:db8:1:2:3:4:5:6']) big.push(`add x-ip6 ${a}`);
    viaNetlink.must('ipset', ['restore', '-exist'], { input: big.join('\n') + '\n' });
    const listed = await listSets((n) => n.startsWith('x-'), viaNetlink.path);
    const saved = parseIpsetSave(viaNetlink.must('ipset', ['save']).replace(/ x-/g, ' tern-x-'));
    expect([...listed.keys()].sort()).toEqual([...saved.keys()].map((k) => k.slice('tern-'.length)).sort());
    for (const [name, set] of listed) {
      expect(set.type).toBe(saved.get(`tern-${name}`)!.type);
      expect([...set.members].sort()).toEqual([...saved.get(`tern-${name}`)!.members].sort());
      expect(set.initval).toEqual(expect.any(Number));
    }
    expect(listed.get('x-big')!.members.size).toBe(4001);
  });
});
