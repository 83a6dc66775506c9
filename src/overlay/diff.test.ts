import { describe, expect, it } from 'vitest';
import { diffOverlay, type ObservedOverlay, type ObservedVtep } from './diff';
import { planOverlay } from './plan';
import type { OverlayDesired, OverlayPlan } from './types';
import { vtepMacFor } from './vtep-mac';

const uplink = { ifindex: 7, mtu: 1500, subnet: '10.0.1.0/24' };
const desired: OverlayDesired = {
  self: { name: 'n1', underlayIp: '10.0.1.2', tunnelIp: '10.244.1.1' },
  remotes: [
    { name: 'n2', underlayIp: '10.0.1.3', subnet: '10.0.1.0/24', blocks: ['10.244.2.0/26'], tunnelIp: '10.244.2.1', vtepMac: vtepMacFor('n2') },
    { name: 'n3', underlayIp: '10.0.2.2', subnet: '10.0.2.0/24', blocks: ['10.244.3.0/26'], tunnelIp: '10.244.3.1', vtepMac: vtepMacFor('n3') },
  ],
  mode: 'vxlan',
};
const plan = planOverlay(desired, uplink);
const vtepOf = (p: OverlayPlan, over: Partial<ObservedVtep> = {}): ObservedVtep => ({
  index: 9,
  vni: p.vtep!.vni,
  port: p.vtep!.port,
  local: p.vtep!.local,
  linkIndex: p.vtep!.linkIndex,
  learning: false,
  mac: p.vtep!.mac,
  mtu: p.vtep!.mtu,
  up: true,
  ...over,
});
/** What the kernel has after the plan was applied. */
const converged = (p: OverlayPlan): ObservedOverlay => ({
  vtep: vtepOf(p),
  addresses: [p.vtep!.address],
  neighbors: p.neighbors,
  fdb: p.fdb,
  routes: p.routes,
});
const nothing: ObservedOverlay = { vtep: null, addresses: [], neighbors: [], fdb: [], routes: [] };
const kinds = (ops: { kind: string }[]) => ops.map((o) => o.kind);

describe('diffOverlay', () => {
  it('from scratch: device, address, FDB, neighbors, routes in that order', () => {
    expect(kinds(diffOverlay(plan, nothing))).toEqual(['createVtep', 'addAddress', 'setFdb', 'setFdb', 'setNeighbor', 'setNeighbor', 'setRoute', 'setRoute']);
  });

  it('converged: nothing to do', () => expect(diffOverlay(plan, converged(plan))).toEqual([]));

  it('a node leaving: its route goes first, then its FDB and neighbor', () => {
    const smaller = planOverlay({ ...desired, remotes: desired.remotes.slice(0, 1) }, uplink);
    const ops = diffOverlay(smaller, converged(plan));
    expect(ops).toEqual([
      { kind: 'delRoute', route: { dst: '10.244.3.0/26', gateway: '10.244.3.1', dev: 'vtep' } },
      { kind: 'delFdb', fdb: { mac: vtepMacFor('n3'), dst: '10.0.2.2' } },
      { kind: 'delNeighbor', neighbor: { ip: '10.244.3.1', mac: vtepMacFor('n3') } },
    ]);
  });

  it.each([
    ['vni', { vni: 1 }],
    ['port', { port: 8472 }],
    ['local address', { local: '10.0.1.99' }],
    ['uplink', { linkIndex: 3 }],
    ['learning', { learning: true }],
  ])('a changed %s recreates the VTEP and everything on it', (_what, over) => {
    const obs = { ...converged(plan), vtep: vtepOf(plan, over) };
    expect(kinds(diffOverlay(plan, obs))).toEqual(['deleteVtep', 'createVtep', 'addAddress', 'setFdb', 'setFdb', 'setNeighbor', 'setNeighbor', 'setRoute', 'setRoute']);
  });

  it('MTU, MAC and admin state are updated in place', () => {
    const obs = { ...converged(plan), vtep: vtepOf(plan, { mtu: 1500, mac: '02:00:00:00:00:01', up: false }) };
    expect(diffOverlay(plan, obs)).toEqual([{ kind: 'updateVtep', mtu: 1450, mac: plan.vtep!.mac, up: true }]);
  });

  it('changed entries are replaced; stray ones on our device are swept', () => {
    const obs = converged(plan);
    obs.fdb = [{ ...plan.fdb[0], dst: '10.0.1.77' }, plan.fdb[1], { mac: '02:00:00:00:00:02', dst: '10.9.9.9' }];
    obs.neighbors = [{ ...plan.neighbors[0], mac: '02:00:00:00:00:03' }, plan.neighbors[1]];
    obs.routes = [{ ...plan.routes[0], gateway: '10.244.9.1' }, plan.routes[1], { dst: '10.244.99.0/26', gateway: '10.0.1.5', dev: 'uplink' }];
    obs.addresses = [plan.vtep!.address, '10.244.1.77/32'];
    expect(kinds(diffOverlay(plan, obs))).toEqual(['delRoute', 'delAddress', 'delFdb', 'setFdb', 'setNeighbor', 'setRoute']);
  });

  it('mode switched away from vxlan: routes withdrawn, then the VTEP deleted', () => {
    const none = planOverlay({ ...desired, mode: 'routed' }, null);
    expect(kinds(diffOverlay(none, converged(plan)))).toEqual(['delRoute', 'delRoute', 'deleteVtep']);
    expect(diffOverlay(none, nothing)).toEqual([]);
  });

  it('crosssubnet -> vxlan: the direct route is replaced by one through the VTEP', () => {
    const cs = planOverlay({ ...desired, mode: 'vxlan-crosssubnet' }, uplink);
    const ops = diffOverlay(plan, converged(cs));
    expect(ops).toContainEqual({ kind: 'setRoute', route: { dst: '10.244.2.0/26', gateway: '10.244.2.1', dev: 'vtep' } });
    expect(kinds(ops)).not.toContain('delRoute');
  });
});
