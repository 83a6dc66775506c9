/**
 * Kernel feature probes for `ternctl doctor`. Device support is probed by
 * really creating the device, in a throw-away network namespace (unshare -n),
 * so nothing in the node's own namespace changes. Sysctls are read in the
 * node's namespace (or the given one).
 */
import * as os from 'node:os';
import { runIn } from './netns';
import type { KernelFacts, Probe } from './types';

export type { KernelFacts, Probe };

function probeInScratchNs(script: string): Probe {
  try {
    const r = runIn(undefined, 'unshare', ['--net', 'bash', '-c', script]);
    if (r.code === 0) return 'yes';
    // unshare itself failing (not root, no user namespaces) says nothing about the kernel.
    return /unshare failed|Operation not permitted/.test(r.stderr) && !/RTNETLINK|Error:/.test(r.stderr) ? 'unknown' : 'no';
  } catch {
    return 'unknown';
  }
}

function readSysctl(netnsPath: string | undefined, key: string): number | undefined {
  try {
    const r = runIn(netnsPath, 'cat', [`/proc/sys/${key.replace(/\./g, '/')}`]);
    const v = Number(r.stdout.trim());
    return r.code === 0 && r.stdout.trim() !== '' && Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Whether this kernel can create 802.1Q sub-interfaces: the one gate doctor and the tests share. */
export function probeVlan8021q(): Probe {
  return probeInScratchNs('ip link add name tprobe0 type veth peer name tprobe1 && ip link add link tprobe0 name tprobe0.1 type vlan id 1');
}

export function gatherKernelFacts(opts: { netnsPath?: string } = {}): KernelFacts {
  const errors: string[] = [];
  const ipt = (() => {
    try {
      return runIn(undefined, 'iptables', ['-V']);
    } catch (e) {
      errors.push(`iptables: ${(e as Error).message}`);
      return undefined;
    }
  })();
  // The nft variant fails even `-V` where the kernel lacks nf_tables, but says so ("Failed to initialize nft").
  const iptOut = ipt ? `${ipt.stdout} ${ipt.stderr}` : '';
  const backend = /nf_tables|nft/.test(iptOut) ? 'nf_tables' : /legacy/.test(iptOut) ? 'legacy' : undefined;
  return {
    kernelRelease: os.release(),
    vxlan: probeInScratchNs('ip link add name tprobe0 type vxlan id 1 dstport 4789'),
    vlan8021q: probeVlan8021q(),
    bridge: probeInScratchNs('ip link add name tprobe0 type bridge'),
    veth: probeInScratchNs('ip link add name tprobe0 type veth peer name tprobe1'),
    ipset: probeInScratchNs('ipset create tern-probe hash:ip'),
    iptablesBackend: backend,
    iptablesUsable: backend ? probeInScratchNs('iptables -w -t filter -N tern-probe && iptables -w -t nat -S >/dev/null') : 'no',
    iptablesLegacyUsable: probeInScratchNs('iptables-legacy -w -t filter -N tern-probe && iptables-legacy -w -t nat -S >/dev/null'),
    ipForward: readSysctl(opts.netnsPath, 'net.ipv4.ip_forward'),
    ip6Forward: readSysctl(opts.netnsPath, 'net.ipv6.conf.all.forwarding'),
    rpFilterAll: readSysctl(opts.netnsPath, 'net.ipv4.conf.all.rp_filter'),
    rpFilterDefault: readSysctl(opts.netnsPath, 'net.ipv4.conf.default.rp_filter'),
    errors,
  };
}
