/**
 * Pure evaluation of kernel facts: which pool modes this node can run and
 * what is misconfigured. Returns reasons, never logs.
 */
import type { KernelFacts, Probe } from './types';
import { checksumOffloadBroken } from './plan';
import type { OverlayMode } from './types';

export type Severity = 'ok' | 'info' | 'warning' | 'error';

export interface Check {
  name: string;
  severity: Severity;
  detail: string;
}

export interface ModeVerdict {
  mode: OverlayMode;
  available: boolean;
  reasons: string[];
}

export interface DoctorReport {
  kernel: string;
  checks: Check[];
  modes: ModeVerdict[];
  /** Checks with severity warning or error. */
  problems: Check[];
}

const feature = (name: string, p: Probe, what: string, missing: string): Check =>
  p === 'yes'
    ? { name, severity: 'ok', detail: `${what} supported` }
    : p === 'no'
      ? { name, severity: 'info', detail: missing }
      : { name, severity: 'warning', detail: `could not probe ${what} (run as root)` };

export function evaluateDoctor(f: KernelFacts): DoctorReport {
  const checks: Check[] = [
    feature('vxlan', f.vxlan, 'VXLAN devices', 'no VXLAN support (CONFIG_VXLAN): vxlan modes unavailable'),
    feature('8021q', f.vlan8021q, '802.1Q VLAN sub-interfaces', 'no 802.1Q support (CONFIG_VLAN_8021Q, module 8021q): vlan mode unavailable'),
    feature('bridge', f.bridge, 'Linux bridges', 'no bridge support (CONFIG_BRIDGE): vlan mode unavailable'),
    feature('veth', f.veth, 'veth pairs', 'no veth support (CONFIG_VETH): no pod can be attached'),
    feature('ipset', f.ipset, 'ipsets', 'no ipset support (CONFIG_IP_SET): policy sets unavailable'),
  ];
  if (f.veth === 'no') checks[3].severity = 'error';

  if (!f.iptablesBackend) checks.push({ name: 'iptables', severity: 'error', detail: 'iptables not found' });
  else if (f.iptablesUsable === 'yes') checks.push({ name: 'iptables', severity: 'ok', detail: `backend ${f.iptablesBackend}` });
  else if (f.iptablesLegacyUsable === 'yes')
    checks.push({ name: 'iptables', severity: 'warning', detail: `the default backend (${f.iptablesBackend}) does not work on this kernel; use iptables-legacy` });
  else checks.push({ name: 'iptables', severity: f.iptablesUsable === 'no' ? 'error' : 'warning', detail: `backend ${f.iptablesBackend} is not usable here` });

  if (f.ipForward === undefined) checks.push({ name: 'forwarding', severity: 'warning', detail: 'cannot read net.ipv4.ip_forward' });
  else if (f.ipForward !== 1) checks.push({ name: 'forwarding', severity: 'error', detail: 'net.ipv4.ip_forward=0: pod traffic cannot leave the node (routed and vxlan modes)' });
  else checks.push({ name: 'forwarding', severity: 'ok', detail: 'net.ipv4.ip_forward=1' });
  if (f.ip6Forward === 0) checks.push({ name: 'forwarding6', severity: 'info', detail: 'net.ipv6.conf.all.forwarding=0: IPv6 pods cannot be routed' });

  // The kernel uses the larger of conf.all and conf.<dev>; new devices inherit conf.default.
  const rp = Math.max(f.rpFilterAll ?? 0, f.rpFilterDefault ?? 0);
  if (f.rpFilterAll === undefined) checks.push({ name: 'rp_filter', severity: 'warning', detail: 'cannot read net.ipv4.conf.all.rp_filter' });
  else if (rp === 1)
    checks.push({ name: 'rp_filter', severity: 'warning', detail: 'strict reverse-path filtering (1) drops asymmetric paths, e.g. CrossSubnet while routes converge; use 2 (loose). Pod source addresses are checked by Tern\'s own rules, not by rp_filter' });
  else checks.push({ name: 'rp_filter', severity: 'ok', detail: `rp_filter=${rp}${rp === 2 ? ' (loose)' : ''}; pod source addresses are checked by Tern's own rules` });

  if (f.vxlan === 'yes' && checksumOffloadBroken(f.kernelRelease))
    checks.push({ name: 'vxlan-csum', severity: 'info', detail: `kernel ${f.kernelRelease} < 5.7: tx checksum offload is turned off on the VTEP` });

  const missing = (p: Probe, why: string): string[] => (p === 'yes' ? [] : [p === 'no' ? why : `${why}: not probed`]);
  const veth = missing(f.veth, 'no veth (CONFIG_VETH)');
  const routed = [...veth, ...(f.ipForward === 1 ? [] : ['net.ipv4.ip_forward is not 1'])];
  const vxlan = [...routed, ...missing(f.vxlan, 'no VXLAN (CONFIG_VXLAN)')];
  // VLAN pods are bridged onto the segment: no forwarding needed on the node.
  const vlan = [...veth, ...missing(f.bridge, 'no bridge (CONFIG_BRIDGE)'), ...missing(f.vlan8021q, 'no 802.1Q (CONFIG_VLAN_8021Q, module 8021q)')];
  const modes: ModeVerdict[] = (
    [
      ['routed', routed],
      ['vxlan', vxlan],
      ['vxlan-crosssubnet', vxlan],
      ['vlan', vlan],
    ] as const
  ).map(([mode, reasons]) => ({ mode, available: reasons.length === 0, reasons: [...reasons] }));

  return { kernel: f.kernelRelease, checks, modes, problems: checks.filter((c) => c.severity === 'warning' || c.severity === 'error') };
}

export function renderDoctor(r: DoctorReport): string {
  const lines = [`kernel ${r.kernel}`, '', 'MODE                AVAILABLE  WHY NOT'];
  for (const m of r.modes) lines.push(`${m.mode.padEnd(20)}${(m.available ? 'yes' : 'no').padEnd(11)}${m.reasons.join('; ')}`);
  lines.push('', 'CHECK        STATUS   DETAIL');
  for (const c of r.checks) lines.push(`${c.name.padEnd(13)}${c.severity.padEnd(9)}${c.detail}`);
  lines.push('', r.problems.length === 0 ? 'no problems found' : `${r.problems.length} problem(s): ${r.problems.map((p) => p.name).join(', ')}`);
  return lines.join('\n') + '\n';
}
