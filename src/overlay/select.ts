/**
 * How traffic toward one remote node travels, per pool mode. CrossSubnet
 * encapsulates only when the remote underlay address is outside our own
 * underlay subnet: inside it the L2 segment delivers pod packets directly.
 */
import { inSubnet } from './addr';
import type { OverlayMode } from './types';

export type PathKind = 'direct' | 'vxlan' | 'none';

export function selectPath(mode: OverlayMode, selfSubnet: string, remoteUnderlayIp: string): PathKind {
  switch (mode) {
    case 'vxlan':
      return 'vxlan';
    case 'vxlan-crosssubnet':
      return inSubnet(remoteUnderlayIp, selfSubnet) ? 'direct' : 'vxlan';
    case 'routed':
    case 'vlan':
      return 'none';
  }
}
