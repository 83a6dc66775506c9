/** The CNI result, shaped for the version the config asked for. */
import { GATEWAY_V4, GATEWAY_V6 } from '../lib/constants';
import type { AllocatedIp } from '../ipam/types';
import { atLeast, type CniVersion } from './version';

export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface CniResult {
  cniVersion: string;
  interfaces: ResultInterface[];
  ips: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes: { dst: string; gw?: string }[];
  dns: Record<string, unknown>;
}

export function buildResult(opts: {
  version: CniVersion;
  host: { name: string; mac?: string; mtu: number };
  container: { name: string; mac?: string; mtu: number; sandbox: string };
  ips: AllocatedIp[];
  dns?: unknown;
  /** On a VLAN the pod has a real subnet and router instead of the /32 and the link-local gateway. */
  onSubnet?: { prefixLen: number; gateway: string };
}): CniResult {
  const v11 = atLeast(opts.version, '1.1.0');
  const pre1 = !atLeast(opts.version, '1.0.0');
  const iface = (i: ResultInterface & { mtu: number }): ResultInterface => {
    const out: ResultInterface = { name: i.name };
    if (i.mac) out.mac = i.mac;
    if (v11) out.mtu = i.mtu;
    if (i.sandbox) out.sandbox = i.sandbox;
    return out;
  };
  const has4 = opts.ips.some((i) => i.family === 4);
  const has6 = opts.ips.some((i) => i.family === 6);
  return {
    cniVersion: opts.version,
    interfaces: [iface(opts.host), iface(opts.container)],
    ips: opts.ips.map((ip) => ({
      ...(pre1 ? { version: String(ip.family) } : {}),
      address: `${ip.address}/${opts.onSubnet?.prefixLen ?? (ip.family === 4 ? 32 : 128)}`,
      gateway: opts.onSubnet?.gateway ?? (ip.family === 4 ? GATEWAY_V4 : GATEWAY_V6),
      interface: 1,
    })),
    routes: opts.onSubnet
      ? [{ dst: opts.onSubnet.gateway.includes(':') ? '::/0' : '0.0.0.0/0', gw: opts.onSubnet.gateway }]
      : [...(has4 ? [{ dst: '0.0.0.0/0', gw: GATEWAY_V4 }] : []), ...(has6 ? [{ dst: '::/0', gw: GATEWAY_V6 }] : [])],
    dns: typeof opts.dns === 'object' && opts.dns !== null ? (opts.dns as Record<string, unknown>) : {},
  };
}

/** IPs of a prevResult that belong to the container interface named `ifname`. */
export function prevResultIps(prev: Record<string, unknown>, ifname: string): string[] {
  const ifaces = Array.isArray(prev.interfaces) ? (prev.interfaces as ResultInterface[]) : [];
  const ips = Array.isArray(prev.ips) ? (prev.ips as CniResult['ips']) : [];
  return ips
    .filter((ip) => ip.interface === undefined || ifaces[ip.interface]?.name === ifname)
    .map((ip) => String(ip.address).split('/')[0]);
}
