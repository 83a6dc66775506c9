/** Data shapes of the overlay module: desired state in, kernel objects out. */

/** Per-IPPool encapsulation mode. */
export type OverlayMode = 'routed' | 'vxlan' | 'vxlan-crosssubnet' | 'vlan';

export const OVERLAY_MODES: readonly OverlayMode[] = ['routed', 'vxlan', 'vxlan-crosssubnet', 'vlan'];

/** This node's VTEP as published in the datastore. */
export interface SelfNode {
  name: string;
  /** The uplink address the VTEP binds to (IFLA_VXLAN_LOCAL). */
  underlayIp: string;
  /** Defaults to vtepMacFor(name). */
  vtepMac?: string;
  /** Tunnel address from IPAM, put on the VTEP as a host address. */
  tunnelIp: string;
  /** Underlay subnet (CIDR); defaults to the uplink address's prefix as the kernel has it. */
  subnet?: string;
}

export interface RemoteNode {
  name: string;
  underlayIp: string;
  vtepMac: string;
  tunnelIp: string;
  /** Pod address blocks (CIDR) affine to that node. */
  blocks: string[];
  /** Underlay subnet of that node (CIDR). */
  subnet: string;
}

export interface OverlayDesired {
  self: SelfNode;
  remotes: RemoteNode[];
  /** Default 4096 (Calico's default VNI). */
  vni?: number;
  /** Default 4789 (IANA VXLAN port, RFC 7348 section 5). */
  port?: number;
  mode: OverlayMode;
  /** Disable tx checksum offload on the VTEP: 'auto' (default) does it on kernels < 5.7. */
  txChecksumOffloadOff?: boolean | 'auto';
}

/** Facts about the uplink the planner needs; read from the kernel by the applier. */
export interface UplinkFacts {
  ifindex: number;
  mtu: number;
  /** Prefix of the uplink address, used when self.subnet is absent. */
  subnet: string;
}

export interface VtepSpec {
  name: string;
  vni: number;
  port: number;
  local: string;
  family: 4 | 6;
  linkIndex: number;
  mac: string;
  mtu: number;
  /** Host address on the VTEP (/32 or /128). */
  address: string;
}

/** Permanent neighbor on the VTEP: remote tunnel IP -> remote VTEP MAC. */
export interface NeighborSpec {
  ip: string;
  mac: string;
}

/** Permanent FDB entry on the VTEP: remote VTEP MAC -> remote underlay IP. */
export interface FdbSpec {
  mac: string;
  dst: string;
}

/** A route to a remote block: onlink through the VTEP, or directly over the uplink. */
export interface RouteSpec {
  dst: string;
  gateway: string;
  dev: 'vtep' | 'uplink';
}

export interface SkippedBlock {
  node: string;
  block: string;
  reason: string;
}

export interface OverlayPlan {
  vtep: VtepSpec | null;
  neighbors: NeighborSpec[];
  fdb: FdbSpec[];
  routes: RouteSpec[];
  /** Underlay addresses allowed to send VXLAN to this node (the other nodes). */
  vxlanPeers: string[];
  port: number;
  skipped: SkippedBlock[];
}

/** What `ternctl doctor` found out about the kernel (probed by kernel-features.ts). */
export type Probe = 'yes' | 'no' | 'unknown';

export interface KernelFacts {
  kernelRelease: string;
  vxlan: Probe;
  vlan8021q: Probe;
  bridge: Probe;
  veth: Probe;
  ipset: Probe;
  /** 'nf_tables', 'legacy', or undefined when iptables is missing. */
  iptablesBackend?: 'nf_tables' | 'legacy';
  /** Whether the backend's tables can be used here (e.g. UML has no nf_tables inet family). */
  iptablesUsable: Probe;
  iptablesLegacyUsable: Probe;
  ipForward?: number;
  ip6Forward?: number;
  rpFilterAll?: number;
  rpFilterDefault?: number;
  errors: string[];
}
