/**
 * Pure diff: the plan against what the kernel has, as an ordered list of
 * operations. Stale routes go first (no traffic toward a removed VTEP entry),
 * then the device, then FDB before neighbor before route, so a route never
 * points at a next hop the VTEP cannot resolve.
 */
import type { FdbSpec, NeighborSpec, OverlayPlan, RouteSpec, VtepSpec } from './types';

export interface ObservedVtep {
  index: number;
  vni: number;
  port: number;
  local: string;
  linkIndex: number;
  learning: boolean;
  mac: string;
  mtu: number;
  up: boolean;
}

export interface ObservedOverlay {
  vtep: ObservedVtep | null;
  /** Addresses (CIDR) on the VTEP. */
  addresses: string[];
  neighbors: NeighborSpec[];
  fdb: FdbSpec[];
  /** Tern-owned routes only (see the applier for what "owned" means). */
  routes: RouteSpec[];
}

export type OverlayOp =
  | { kind: 'deleteVtep' }
  | { kind: 'createVtep'; vtep: VtepSpec }
  | { kind: 'updateVtep'; mtu?: number; mac?: string; up?: true }
  | { kind: 'addAddress'; cidr: string }
  | { kind: 'delAddress'; cidr: string }
  | { kind: 'setFdb'; fdb: FdbSpec }
  | { kind: 'delFdb'; fdb: FdbSpec }
  | { kind: 'setNeighbor'; neighbor: NeighborSpec }
  | { kind: 'delNeighbor'; neighbor: NeighborSpec }
  | { kind: 'setRoute'; route: RouteSpec }
  | { kind: 'delRoute'; route: RouteSpec };

/** Attributes the kernel cannot change on a live vxlan device: a change means delete + create. */
function needsRecreate(want: VtepSpec, have: ObservedVtep): boolean {
  return want.vni !== have.vni || want.port !== have.port || want.local !== have.local || want.linkIndex !== have.linkIndex || have.learning;
}

export function diffOverlay(plan: OverlayPlan, obs: ObservedOverlay): OverlayOp[] {
  const ops: OverlayOp[] = [];
  const want = plan.vtep;
  let have = obs;
  const recreate = want !== null && obs.vtep !== null && needsRecreate(want, obs.vtep);

  // Routes that should not exist (or that lose their VTEP) are withdrawn first.
  const wantRoutes = new Map(plan.routes.map((r) => [r.dst, r]));
  for (const r of obs.routes) if (!wantRoutes.has(r.dst)) ops.push({ kind: 'delRoute', route: r });

  if (obs.vtep && (want === null || recreate)) {
    ops.push({ kind: 'deleteVtep' });
    // The kernel removes everything on the device with it, routes through it included.
    have = { vtep: null, addresses: [], neighbors: [], fdb: [], routes: obs.routes.filter((r) => r.dev !== 'vtep') };
  }
  if (want === null) {
    return ops;
  }
  if (have.vtep === null) {
    ops.push({ kind: 'createVtep', vtep: want });
  } else {
    const u: { kind: 'updateVtep'; mtu?: number; mac?: string; up?: true } = { kind: 'updateVtep' };
    if (have.vtep.mtu !== want.mtu) u.mtu = want.mtu;
    if (have.vtep.mac !== want.mac) u.mac = want.mac;
    if (!have.vtep.up) u.up = true;
    if (u.mtu !== undefined || u.mac !== undefined || u.up) ops.push(u);
  }

  for (const a of have.addresses) if (a !== want.address) ops.push({ kind: 'delAddress', cidr: a });
  if (!have.addresses.includes(want.address)) ops.push({ kind: 'addAddress', cidr: want.address });

  const haveFdb = new Map(have.fdb.map((f) => [f.mac, f]));
  const wantFdb = new Set(plan.fdb.map((f) => f.mac));
  for (const f of have.fdb) if (!wantFdb.has(f.mac)) ops.push({ kind: 'delFdb', fdb: f });
  for (const f of plan.fdb) if (haveFdb.get(f.mac)?.dst !== f.dst) ops.push({ kind: 'setFdb', fdb: f });

  const haveNeigh = new Map(have.neighbors.map((n) => [n.ip, n]));
  const wantNeigh = new Set(plan.neighbors.map((n) => n.ip));
  for (const n of have.neighbors) if (!wantNeigh.has(n.ip)) ops.push({ kind: 'delNeighbor', neighbor: n });
  for (const n of plan.neighbors) if (haveNeigh.get(n.ip)?.mac !== n.mac) ops.push({ kind: 'setNeighbor', neighbor: n });

  const haveRoutes = new Map(have.routes.map((r) => [r.dst, r]));
  for (const r of plan.routes) {
    const h = haveRoutes.get(r.dst);
    if (!h || !sameRoute(h, r)) ops.push({ kind: 'setRoute', route: r });
  }
  return ops;
}

function sameRoute(a: RouteSpec, b: RouteSpec): boolean {
  return a.dst === b.dst && a.gateway === b.gateway && a.dev === b.dev;
}
