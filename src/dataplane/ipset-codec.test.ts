import { describe, expect, it } from 'vitest';
import { encodeMemberOp, messageType, type MemberOp } from './ipset-codec';

/** A netlink attribute as hex: length, type, value, padding to 4. */
const nla = (type: number, valueHex: string) => {
  const len = 4 + valueHex.length / 2;
  const h = (n: number) => [n & 0xff, n >> 8].map((x) => x.toString(16).padStart(2, '0')).join('');
  return h(len) + h(type) + valueHex + '00'.repeat(((len + 3) & ~3) - len);
};
const header = (set: string) => '02000000' + nla(1, '07') + nla(2, Buffer.from(set + '\0').toString('hex'));

// The DATA attributes recorded from Debian's ipset 7 with `strace -xx` (sendto of `ipset -exist add ...`).
const recorded: [MemberOp, string][] = [
  [
    { op: 'add', set: 't-ni', type: 'hash:net,iface', member: '10.77.0.30/32,tern0000000001e' },
    header('t-ni') + nla(0x8007, '0c000180080001400a4d001e0500030020000000140017007465726e3030303030303030303165000800094000000000'),
  ],
  [
    { op: 'add', set: 't-ip', type: 'hash:ip', member: 'fd00:77::1e' },
    header('t-ip') + nla(0x8007, '1800018014000240fd0000770000000000000000000000' + '1e' + '0800094000000000'),
  ],
  [
    { op: 'add', set: 't-ipp', type: 'hash:ip,port', member: '10.77.0.30,tcp:8080' },
    header('t-ipp') + nla(0x8007, '0c000180080001400a4d001e060004401f90000005000700060000000800094000000000'),
  ],
];

describe('ipset over netlink: encoding', () => {
  it.each(recorded)('$member in $type is byte for byte what ipset sends', (op, hex) => {
    expect(encodeMemberOp(op).toString('hex')).toBe(hex);
  });

  it('add and del are IPSET_CMD_ADD (9) and IPSET_CMD_DEL (10) of subsystem 6', () => {
    expect(messageType('add')).toBe(0x609);
    expect(messageType('del')).toBe(0x60a);
  });

  it('a del carries the same attributes as the add', () => {
    const [op, hex] = recorded[0];
    expect(encodeMemberOp({ ...op, op: 'del' }).toString('hex')).toBe(hex);
  });

  it('hash:net takes a prefix; udp and sctp ports carry their protocol numbers', () => {
    expect(encodeMemberOp({ op: 'add', set: 's', type: 'hash:net', member: '10.0.0.0/8' }).toString('hex')).toContain(nla(3, '08'));
    expect(encodeMemberOp({ op: 'add', set: 's', type: 'hash:ip,port', member: '10.0.0.1,udp:53' }).toString('hex')).toContain(nla(7, '11'));
    expect(encodeMemberOp({ op: 'add', set: 's', type: 'hash:ip,port', member: '10.0.0.1,sctp:3868' }).toString('hex')).toContain(nla(7, '84'));
  });

  it.each<[Partial<MemberOp>, RegExp]>([
    [{ type: 'hash:ip', member: '10.0.0.1/32' }, /not an address/],
    [{ type: 'hash:ip', member: '10.0.0.300' }, /not an IP address/],
    [{ type: 'hash:net', member: '10.0.0.0/33' }, /prefix length/],
    [{ type: 'hash:ip,port', member: '10.0.0.1,icmp:8' }, /PROTO:PORT/],
    [{ type: 'hash:ip,port', member: '10.0.0.1,tcp:70000' }, /PROTO:PORT/],
    [{ type: 'hash:net,iface', member: '10.0.0.1/32' }, /IFACE/],
    [{ type: 'hash:net,iface', member: '10.0.0.1/32,a-name-longer-than-15' }, /IFACE/],
    [{ set: 'x'.repeat(32), type: 'hash:ip', member: '10.0.0.1' }, /set name/],
    [{ type: 'list:set' as MemberOp['type'], member: 'a' }, /not written over netlink/],
  ])('refuses %o before anything is sent', (o, re) => {
    expect(() => encodeMemberOp({ op: 'add', set: 's', type: 'hash:ip', member: '', ...o })).toThrow(re);
  });
});
