/**
 * Drop VXLAN that does not come from another node: a pod (or any host that
 * is not a node) could otherwise inject frames straight into the overlay
 * with a forged inner source. One chain, jumped to from INPUT and FORWARD
 * for the VXLAN port only.
 */
import { CHAIN_PREFIX } from '../lib/constants';
import { familyOf } from './addr';
import { mustRunIn, runIn } from './netns';
import type { OverlayPlan } from './types';

export const VXLAN_GUARD_CHAIN = `${CHAIN_PREFIX}vxlan-guard`;
const HOOKS = ['INPUT', 'FORWARD'] as const;

/** Rule specs of the jump into the guard chain (what follows `-A <hook>`). */
export function guardJump(port: number): string[] {
  return ['-p', 'udp', '-m', 'udp', '--dport', String(port), '-m', 'comment', '--comment', 'tern vxlan guard', '-j', VXLAN_GUARD_CHAIN];
}

/** iptables-restore input that (re)writes the guard chain. */
export function guardRestoreText(plan: OverlayPlan): string {
  const fam = plan.vtep?.family ?? 4;
  const host = fam === 4 ? 32 : 128;
  const lines = ['*filter', `:${VXLAN_GUARD_CHAIN} - [0:0]`, `-A ${VXLAN_GUARD_CHAIN} -i ${'tern'}+ -j DROP`];
  for (const p of plan.vxlanPeers) if (familyOf(p) === fam) lines.push(`-A ${VXLAN_GUARD_CHAIN} -s ${p}/${host} -j RETURN`);
  lines.push(`-A ${VXLAN_GUARD_CHAIN} -j DROP`, 'COMMIT', '');
  return lines.join('\n');
}

/** `iptables` -> `ip6tables`, `iptables-legacy` -> `ip6tables-legacy`. */
function forFamily(iptables: string, fam: 4 | 6): string {
  return fam === 6 ? iptables.replace(/^iptables/, 'ip6tables') : iptables;
}

export function applyVxlanGuard(netnsPath: string | undefined, plan: OverlayPlan, iptables: string): void {
  const fam = plan.vtep?.family ?? 4;
  for (const f of [4, 6] as const) {
    const bin = forFamily(iptables, f);
    const want = plan.vtep !== null && f === fam;
    if (!want && runIn(netnsPath, bin, ['-w', '-S', VXLAN_GUARD_CHAIN]).code !== 0) continue;
    if (want) mustRunIn(netnsPath, `${bin}-restore`, ['-w', '--noflush'], guardRestoreText(plan));
    const jump = guardJump(plan.port);
    for (const hook of HOOKS) {
      // Remove jumps into the chain that differ from the wanted one (an old port).
      const rules = mustRunIn(netnsPath, bin, ['-w', '-S', hook]).split('\n');
      let present = false;
      for (const r of rules) {
        if (!r.includes(`-j ${VXLAN_GUARD_CHAIN}`)) continue;
        const spec = r.replace(/^-A \S+ /, '');
        if (want && spec === jump.map((x) => (x.includes(' ') ? `"${x}"` : x)).join(' ')) present = true;
        else mustRunIn(netnsPath, bin, ['-w', '-D', hook, ...splitSpec(spec)]);
      }
      if (want && !present) mustRunIn(netnsPath, bin, ['-w', '-I', hook, '1', ...jump]);
    }
    if (!want) {
      mustRunIn(netnsPath, bin, ['-w', '-F', VXLAN_GUARD_CHAIN]);
      mustRunIn(netnsPath, bin, ['-w', '-X', VXLAN_GUARD_CHAIN]);
    }
  }
}

/** Split an `iptables -S` rule spec into argv, honouring double quotes. */
export function splitSpec(spec: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(spec))) out.push(m[1] ?? m[2]);
  return out;
}
