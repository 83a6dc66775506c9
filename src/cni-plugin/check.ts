/** CHECK: verifies the attachment really is as ADD left it, and names the first mismatch. */
import { TernError } from '../lib/errors';
import { canonicalAddr, familyOf, parsePrefix } from '../lib/cidr';
import { GATEWAY_V4, GATEWAY_V6, HOST_VETH_MAC, RTPROT_POD } from '../lib/constants';
import { Rtnl } from '../dataplane/rtnl';
import { hostVethName } from '../dataplane/endpoint-plan';
import { vlanNames } from '../overlay/vlan-plan';
import type { IPPool } from '../ipam/model';
import { openIpam, useDatastore } from './ipam';
import { prevResultIps } from './result';
import { openContainerNs } from './add';
import { poolOfAllocation } from './vlan';
import { allocationKey, type Ctx } from './context';

const fail = (msg: string): TernError => new TernError('CHECK_FAILED', msg);

export async function cmdCheck(ctx: Ctx): Promise<void> {
  const { env, conf } = ctx;
  if (!conf.prevResult) throw new TernError('INVALID_CONFIG', 'invalid field "prevResult": CHECK needs the result of ADD');
  const expected = prevResultIps(conf.prevResult, env.ifname).map(canonicalAddr).sort();
  if (!expected.length) throw fail(`prevResult has no IP for interface ${env.ifname}`);

  // What ADD planned depends on the pool's mode, and the allocation says which pool. The
  // kernel is checked first (its mismatches are the specific ones), the allocation last.
  const { store, done } = useDatastore(ctx);
  const ipam = openIpam(conf, undefined, store);
  let allocated: string[];
  let vlanPool: IPPool | undefined;
  try {
    const alloc = await ipam.get(allocationKey(ctx));
    allocated = (alloc?.ips ?? []).map((i) => i.address).sort();
    vlanPool = alloc ? await poolOfAllocation(store, alloc.ips, 'vlan') : undefined;
  } finally {
    await ipam.close();
    await done();
  }
  if (vlanPool?.vlan) await checkVlan(ctx, vlanPool, expected);
  else await checkRouted(ctx, expected);
  if (JSON.stringify(allocated) !== JSON.stringify(expected)) {
    throw fail(`IPAM holds [${allocated.join(', ')}] for ${env.containerId}/${env.ifname}, expected [${expected.join(', ')}]`);
  }
}

async function checkRouted(ctx: Ctx, expected: string[]): Promise<void> {
  const { env } = ctx;
  const ns = openContainerNs(env.netns);
  const cont = Rtnl.open(ns);
  const host = Rtnl.open();
  try {
    const link = await cont.linkByName(env.ifname);
    if (!link) throw new TernError('UNKNOWN_CONTAINER', `interface ${env.ifname} not found in ${env.netns}`);
    await checkPodAddresses(cont, link, env.ifname, expected.map((a) => `${a}/${familyOf(a) === 4 ? 32 : 128}`));

    const routes = await cont.listRoutes({ table: 254 });
    const onLink = (dst: string, gw?: string) => routes.some((r) => r.dst === dst && r.dev === link.index && (gw ? r.gateway === gw : r.scope === 'link'));
    if (expected.some((a) => familyOf(a) === 4)) {
      if (!onLink(`${GATEWAY_V4}/32`)) throw fail(`route ${GATEWAY_V4}/32 scope link dev ${env.ifname} is missing in the container`);
      if (!onLink('0.0.0.0/0', GATEWAY_V4)) throw fail(`default route via ${GATEWAY_V4} is missing in the container`);
    }
    if (expected.some((a) => familyOf(a) === 6) && !onLink('::/0', GATEWAY_V6)) throw fail(`default route via ${GATEWAY_V6} is missing in the container`);

    const hostName = hostVethName(env.containerId, env.ifname);
    const hl = await host.linkByName(hostName);
    if (!hl) throw fail(`host veth ${hostName} is missing`);
    if (!hl.up) throw fail(`host veth ${hostName} is down`);
    if (hl.mac !== HOST_VETH_MAC) throw fail(`host veth ${hostName} has MAC ${hl.mac}, expected ${HOST_VETH_MAC}`);
    const hostRoutes = await host.listRoutes({ table: 254, protocol: RTPROT_POD });
    for (const a of expected) {
      const dst = `${a}/${familyOf(a) === 4 ? 32 : 128}`;
      if (!hostRoutes.some((r) => r.dst === dst && r.dev === hl.index)) throw fail(`host route ${dst} dev ${hostName} is missing`);
    }
  } finally {
    cont.close();
    host.close();
    ns.close();
  }
}

type Link = NonNullable<Awaited<ReturnType<Rtnl['linkByName']>>>;

async function checkPodAddresses(cont: Rtnl, link: Link, ifname: string, want: string[]): Promise<void> {
  if (!link.up) throw fail(`interface ${ifname} is down`);
  const have = (await cont.listAddresses(link.index))
    .filter((a) => !a.address.startsWith('fe80:'))
    .map((a) => `${a.address}/${a.prefixLen}`)
    .sort();
  if (JSON.stringify(have) !== JSON.stringify([...want].sort())) throw fail(`interface ${ifname} has addresses [${have.join(', ')}], expected [${[...want].sort().join(', ')}]`);
}

/** A VLAN pod: the pool's subnet on eth0, default route via the pool's router, its veth a port of the VLAN's bridge. No /32 and no host route. */
async function checkVlan(ctx: Ctx, pool: IPPool, expected: string[]): Promise<void> {
  const { env } = ctx;
  const v = pool.vlan!;
  const n = vlanNames({ pool: { vlanId: v.id, parent: v.parent, gateway: v.gateway, mtu: v.mtu }, containerId: env.containerId, ifName: env.ifname });
  const prefixLen = parsePrefix(pool.cidr).length;
  const ns = openContainerNs(env.netns);
  const cont = Rtnl.open(ns);
  const host = Rtnl.open();
  try {
    const link = await cont.linkByName(env.ifname);
    if (!link) throw new TernError('UNKNOWN_CONTAINER', `interface ${env.ifname} not found in ${env.netns}`);
    await checkPodAddresses(cont, link, env.ifname, expected.map((a) => `${a}/${prefixLen}`));
    const defaultDst = familyOf(v.gateway) === 4 ? '0.0.0.0/0' : '::/0';
    const routes = await cont.listRoutes({ table: 254 });
    if (!routes.some((r) => r.dst === defaultDst && r.gateway === v.gateway && r.dev === link.index)) throw fail(`default route via ${v.gateway} dev ${env.ifname} is missing in the container`);

    const links = await host.sock.getLinks();
    const byName = (name: string) => links.find((l) => l.attrs.ifname === name);
    const br = byName(n.bridge);
    if (!br) throw fail(`VLAN ${v.id} bridge ${n.bridge} is missing`);
    const hv = byName(n.hostVeth);
    if (!hv) throw fail(`host veth ${n.hostVeth} is missing`);
    if (hv.attrs.master !== br.data.index) throw fail(`host veth ${n.hostVeth} is not a port of ${n.bridge}`);
    const sub = byName(n.subInterface);
    if (!sub) throw fail(`VLAN sub-interface ${n.subInterface} is missing`);
    if (sub.attrs.master !== br.data.index) throw fail(`VLAN sub-interface ${n.subInterface} is not a port of ${n.bridge}`);
    for (const l of [br, hv, sub]) if (!l.data.flags?.up) throw fail(`${l.attrs.ifname} is down`);
  } finally {
    cont.close();
    host.close();
    ns.close();
  }
}
