/**
 * The VLAN test segment: two nodes and a router on one trunk (a bridge in a
 * switch namespace). The router has an 802.1Q sub-interface per VLAN, each
 * with the VLAN's .1 address, and does not forward between them.
 *
 *   n1 --trunk0--+-- sw (br0) --+--trunk0-- n2
 *                       |
 *                 trunk0 -- gw: trunk0.<vid> 10.<vid>.0.1/24 per VLAN
 */
import type { Netns, Sandbox } from '../sandbox';

export function vlanTrunk(sb: Sandbox, vlans: number[]): { n1: Netns; n2: Netns; gw: Netns; sw: Netns } {
  const [n1, n2, gw, sw] = [sb.netns('n1'), sb.netns('n2'), sb.netns('gw'), sb.netns('sw')];
  sw.ip('link', 'add', 'br0', 'type', 'bridge');
  sw.ip('link', 'set', 'br0', 'up');
  for (const [ns, port] of [[n1, 'p1'], [n2, 'p2'], [gw, 'pg']] as const) {
    sb.link(ns, 'trunk0', sw, port);
    sw.ip('link', 'set', port, 'master', 'br0');
  }
  gw.sysctl('net.ipv4.ip_forward', '0');
  gw.must('ip', ['-b', '-'], {
    input: vlans.flatMap((v) => [`link add link trunk0 name trunk0.${v} type vlan id ${v}`, `addr add 10.${v}.0.1/24 dev trunk0.${v}`, `link set trunk0.${v} up`]).join('\n') + '\n',
  });
  return { n1, n2, gw, sw };
}
