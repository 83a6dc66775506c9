/**
 * Member writes over netlink against the real kernel, in a sandbox namespace:
 * what `ipset save` shows afterwards is what `ipset restore` of the same lines
 * gives in a second namespace, `-exist` semantics hold, and a refused write
 * names the set and member and stops the batch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, type Netns } from '../sandbox';
import { applyMemberOps } from '../../src/dataplane/ipset-nl';
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
});
