/** CHECK: verifies the attachment really is as ADD left it, and names the first mismatch. */
import { TernError } from '../lib/errors';
import { canonicalAddr, familyOf } from '../lib/cidr';
import { GATEWAY_V4, GATEWAY_V6, HOST_VETH_MAC, RTPROT_POD } from '../lib/constants';
import { Rtnl } from '../dataplane/rtnl';
import { hostVethName } from '../dataplane/endpoint-plan';
import { openIpam } from './ipam';
import { prevResultIps } from './result';
import { openContainerNs } from './add';
import { allocationKey, type Ctx } from './context';

const fail = (msg: string): TernError => new TernError('CHECK_FAILED', msg);

export async function cmdCheck(ctx: Ctx): Promise<void> {
  const { env, conf } = ctx;
  if (!conf.prevResult) throw new TernError('INVALID_CONFIG', 'invalid field "prevResult": CHECK needs the result of ADD');
  const expected = prevResultIps(conf.prevResult, env.ifname).map(canonicalAddr).sort();
  if (!expected.length) throw fail(`prevResult has no IP for interface ${env.ifname}`);

  const ns = openContainerNs(env.netns);
  const cont = Rtnl.open(ns);
  const host = Rtnl.open();
  try {
    const link = await cont.linkByName(env.ifname);
    if (!link) throw new TernError('UNKNOWN_CONTAINER', `interface ${env.ifname} not found in ${env.netns}`);
    if (!link.up) throw fail(`interface ${env.ifname} is down`);
    const have = (await cont.listAddresses(link.index))
      .filter((a) => !a.address.startsWith('fe80:'))
      .map((a) => `${a.address}/${a.prefixLen}`)
      .sort();
    const want = expected.map((a) => `${a}/${familyOf(a) === 4 ? 32 : 128}`).sort();
    if (JSON.stringify(have) !== JSON.stringify(want)) throw fail(`interface ${env.ifname} has addresses [${have.join(', ')}], expected [${want.join(', ')}]`);

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

  const ipam = openIpam(conf);
  try {
    const alloc = await ipam.get(allocationKey(ctx));
    const allocated = (alloc?.ips ?? []).map((i) => i.address).sort();
    if (JSON.stringify(allocated) !== JSON.stringify(expected)) {
      throw fail(`IPAM holds [${allocated.join(', ')}] for ${env.containerId}/${env.ifname}, expected [${expected.join(', ')}]`);
    }
  } finally {
    await ipam.close();
  }
}
