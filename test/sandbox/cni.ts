/**
 * Runs the built CNI binaries exactly as a runtime does: CNI_* in the
 * environment, the config on stdin, the plugin process inside the node's
 * network namespace (the runtime's "host").
 */
import * as path from 'node:path';
import { DIST_BIN, Netns, Sandbox, shAsync } from './index';
import { parseNetConf } from '../../src/cni-plugin/config';
import { openIpam } from '../../src/cni-plugin/ipam';

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  config: object | string;
  /** Binary name in CNI_PATH (the config's type). */
  plugin?: string;
  extraEnv?: NodeJS.ProcessEnv;
}

export interface CniOutcome {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

export async function runCni(node: Netns, call: CniCall): Promise<CniOutcome> {
  const cniPath = call.path ?? `${DIST_BIN}:/usr/lib/cni`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    TERN_ACL_STATE_DIR: process.env.TERN_ACL_STATE_DIR,
    CNI_COMMAND: call.command,
    ...(call.containerId !== undefined ? { CNI_CONTAINERID: call.containerId } : {}),
    ...(call.netns !== undefined ? { CNI_NETNS: call.netns } : {}),
    ...(call.ifname !== undefined ? { CNI_IFNAME: call.ifname } : {}),
    ...(call.args !== undefined ? { CNI_ARGS: call.args } : {}),
    CNI_PATH: cniPath,
    ...call.extraEnv,
  };
  const bin = call.plugin && call.plugin.startsWith('/') ? call.plugin : path.join(call.plugin && !['tern', 'tern-ipam'].includes(call.plugin) ? '/usr/lib/cni' : DIST_BIN, call.plugin ?? 'tern');
  const input = typeof call.config === 'string' ? call.config : JSON.stringify(call.config);
  const r = await node.execAsync(bin, [], { input, env, timeoutMs: 60_000 });
  let json: any;
  try {
    json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/**
 * A node namespace with an uplink to a "fabric" namespace and a default route
 * through it (proxy ARP for 169.254.1.1 needs the node to have a route out),
 * forwarding on.
 */
export function makeNode(sb: Sandbox, name: string, opts: { uplinkMtu?: number; index?: number } = {}): { node: Netns; fabric: Netns; nodeIp: string } {
  const i = opts.index ?? 1;
  const node = sb.netns(name);
  const fabric = sb.netns(`${name}f`);
  const nodeIp = `192.0.2.${10 + i}`;
  sb.link(node, 'uplink0', fabric, 'down0', { aAddr: `${nodeIp}/24`, bAddr: '192.0.2.1/24', mtu: opts.uplinkMtu });
  node.ip('route', 'add', 'default', 'via', '192.0.2.1');
  node.ip('-6', 'addr', 'add', `2001:db8::${10 + i}/64`, 'dev', 'uplink0', 'nodad');
  fabric.ip('-6', 'addr', 'add', '2001:db8::1/64', 'dev', 'down0', 'nodad');
  node.ip('-6', 'route', 'add', 'default', 'via', '2001:db8::1');
  node.must('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  return { node, fabric, nodeIp };
}

export function ternConfig(dir: string, overrides: Record<string, unknown> = {}): Record<string, any> {
  return {
    cniVersion: '1.0.0',
    name: 'tern-net',
    type: 'tern',
    ipam: { type: 'tern-ipam', pools: ['10.244.0.0/16', 'fd00:10:244::/48'] },
    datastore: { type: 'sqlite', path: path.join(dir, 'tern.db') },
    log_file: path.join(dir, 'cni.log'),
    log_level: 'debug',
    ...overrides,
  };
}

/** The allocations the plugin's IPAM holds for a config, read through the same seam the plugin uses. */
export async function listAllocations(conf: Record<string, unknown>): Promise<{ handle: string; address: string }[]> {
  const ipam = openIpam(parseNetConf(conf, { needIpam: false }));
  try {
    const all = await ipam.list(String(conf.name));
    return all.flatMap((a) => a.ips.map((ip) => ({ handle: `${a.key.network}.${a.key.containerId}.${a.key.ifname}`, address: ip.address })));
  } finally {
    await ipam.close();
  }
}
