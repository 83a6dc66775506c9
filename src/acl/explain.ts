/**
 * explain: evaluate one packet against the policy model (no kernel involved)
 * and say which tier, policy and rule decide it, in the same order the
 * compiled chains do: the source pod's egress, then the destination's ingress.
 */
import * as net from 'node:net';
import { Proto, type Direction, type Endpoint, type EntityMatch, type Policy, type PolicyInput, type Rule } from './model';
import { FAILSAFE_TCP, FAILSAFE_UDP4, FAILSAFE_UDP6 } from './compile';
import { Resolver, addrOnly, entityNotScope, entityScope, familyOf, inCidr, orderedTiers, policyScope, tierPolicies } from './resolve';

export interface Packet {
  src: string;
  dst: string;
  protocol: number;
  dstPort?: number;
  srcPort?: number;
  icmp?: { type: number; code: number };
  /** The destination is the node itself (INPUT path): failsafe ports are always open. */
  toNode?: boolean;
}

export interface Step {
  direction: Direction;
  endpoint: string;
  tier?: string;
  policy?: string;
  rule?: number;
  action: 'Allow' | 'Deny' | 'Pass' | 'Log' | 'EndOfTier' | 'TenantIsolation' | 'NoPolicy' | 'NotAnEndpoint';
  detail: string;
}

export interface Explanation {
  verdict: 'allow' | 'deny';
  steps: Step[];
}

interface Side {
  ip: string;
  ep?: Endpoint;
}

export function findEndpoint(input: PolicyInput, ref: string): Side | undefined {
  if (net.isIP(ref)) {
    const ip = addrOnly(ref);
    return { ip, ep: input.endpoints.find((e) => e.ips.some((x) => addrOnly(x) === ip)) };
  }
  const [ns, name] = ref.includes('/') ? ref.split('/', 2) : [undefined, ref];
  const matches = input.endpoints.filter((e) => e.name === name && (ns === undefined || e.namespace === ns));
  if (matches.length !== 1) return undefined;
  return { ip: addrOnly(matches[0].ips[0]), ep: matches[0] };
}

export function parsePortProto(s: string): { port?: number; protocol: number } {
  const [a, b] = s.split('/');
  const protoName = (b ?? a).toUpperCase();
  const protos: Record<string, number> = { TCP: Proto.TCP, UDP: Proto.UDP, SCTP: Proto.SCTP, ICMP: Proto.ICMP, ICMPV6: Proto.ICMPV6 };
  if (b === undefined && protos[protoName] !== undefined) return { protocol: protos[protoName] };
  const protocol = protos[protoName] ?? Number(protoName);
  return { port: Number(a), protocol };
}

export function explainPacket(input: PolicyInput, pkt: Packet): Explanation {
  const res = new Resolver(input);
  const lookup = (ip: string): Side => ({ ip: addrOnly(ip), ep: input.endpoints.find((e) => e.ips.some((x) => addrOnly(x) === addrOnly(ip))) });
  const src = lookup(pkt.src);
  const dst = lookup(pkt.dst);
  const steps: Step[] = [];
  if (pkt.toNode && src.ep && isFailsafe(pkt)) {
    steps.push({ direction: 'egress', endpoint: `${src.ep.namespace}/${src.ep.name}`, action: 'Allow', detail: `port ${pkt.dstPort} on the node is a failsafe port` });
    return { verdict: 'allow', steps };
  }
  for (const [dir, local] of [
    ['egress', src],
    ['ingress', dst],
  ] as const) {
    if (!local.ep) {
      steps.push({ direction: dir, endpoint: local.ip, action: 'NotAnEndpoint', detail: `${local.ip} is not a local endpoint; no ${dir} policy applies` });
      continue;
    }
    const v = evaluateDirection(res, dir, local.ep, src, dst, pkt, steps);
    if (v === 'deny') return { verdict: 'deny', steps };
  }
  return { verdict: 'allow', steps };
}

function isFailsafe(pkt: Packet): boolean {
  if (pkt.dstPort === undefined) return false;
  if (pkt.protocol === Proto.TCP) return FAILSAFE_TCP.includes(pkt.dstPort);
  if (pkt.protocol === Proto.UDP) return (familyOf(pkt.dst) === 4 ? FAILSAFE_UDP4 : FAILSAFE_UDP6).includes(pkt.dstPort);
  return false;
}

function evaluateDirection(res: Resolver, dir: Direction, ep: Endpoint, src: Side, dst: Side, pkt: Packet, steps: Step[]): 'allow' | 'deny' | 'none' {
  const input = res.input;
  const epName = `${ep.namespace}/${ep.name}`;
  for (const tier of orderedTiers(input)) {
    const pols = tierPolicies(input, tier.name, dir).filter((p) => res.policySelects(p, ep));
    if (pols.length === 0) continue;
    let passed = false;
    for (const p of pols) {
      const pname = p.namespace ? `${p.kind} ${p.namespace}/${p.name}` : `${p.kind} ${p.name}`;
      let done = false;
      for (let i = 0; i < p[dir].length && !done; i++) {
        const rule = p[dir][i];
        if (!ruleMatches(res, rule, dir, p, src, dst, pkt)) continue;
        const base = { direction: dir, endpoint: epName, tier: tier.name, policy: pname, rule: i };
        switch (rule.action) {
          case 'Log':
            steps.push({ ...base, action: 'Log', detail: `${dir} rule ${i} logs and evaluation continues` });
            break;
          case 'Allow':
            steps.push({ ...base, action: 'Allow', detail: `${dir} rule ${i} allows` });
            return 'allow';
          case 'Deny':
            steps.push({ ...base, action: 'Deny', detail: `${dir} rule ${i} denies` });
            return 'deny';
          case 'Pass':
            steps.push({ ...base, action: 'Pass', detail: `${dir} rule ${i} passes to the next tier` });
            passed = true;
            done = true;
            break;
        }
      }
      if (passed) break;
    }
    if (!passed) {
      if (tier.defaultAction === 'Deny') {
        steps.push({ direction: dir, endpoint: epName, tier: tier.name, action: 'EndOfTier', detail: `no rule of tier ${tier.name} matched; end-of-tier deny` });
        return 'deny';
      }
      steps.push({ direction: dir, endpoint: epName, tier: tier.name, action: 'Pass', detail: `tier ${tier.name} has no verdict; its default action passes` });
    }
  }
  if (dir === 'ingress' && input.settings.tenantIsolation && src.ep) {
    const a = res.tenantOf(src.ep);
    const b = res.tenantOf(ep);
    if (a && b && a !== b) {
      steps.push({ direction: dir, endpoint: epName, action: 'TenantIsolation', detail: `tenant ${a} may not reach tenant ${b} unless a policy allows it` });
      return 'deny';
    }
  }
  steps.push({ direction: dir, endpoint: epName, action: 'NoPolicy', detail: `no policy decides ${dir} for ${epName}; allowed` });
  return 'none';
}

function ruleMatches(res: Resolver, rule: Rule, dir: Direction, p: Policy, src: Side, dst: Side, pkt: Packet): boolean {
  const fam = familyOf(src.ip);
  if (rule.ipVersion && rule.ipVersion !== fam) return false;
  if (rule.protocol !== undefined && rule.protocol !== pkt.protocol) return false;
  if (rule.notProtocol !== undefined && rule.notProtocol === pkt.protocol) return false;
  const icmpHit = (t: { type: number; code?: number }) => pkt.icmp !== undefined && pkt.icmp.type === t.type && (t.code === undefined || t.code === pkt.icmp.code);
  if (rule.icmp && !icmpHit(rule.icmp)) return false;
  if (rule.notICMP && icmpHit(rule.notICMP)) return false;
  return sideMatches(res, rule.source, src, pkt.srcPort, undefined, pkt.protocol) && sideMatches(res, rule.destination, dst, pkt.dstPort, dir === 'ingress' ? p : undefined, pkt.protocol);
}

function sideMatches(res: Resolver, e: EntityMatch, side: Side, port: number | undefined, ingressPolicy: Policy | undefined, protocol: number): boolean {
  const fam = familyOf(side.ip);
  if (e.nets) {
    const mine = e.nets.filter((n) => familyOf(n) === fam);
    if (!mine.some((n) => inCidr(side.ip, n))) return false;
  }
  if (e.notNets && e.notNets.some((n) => inCidr(side.ip, n))) return false;
  const sc = entityScope(e);
  if (sc && !(side.ep && res.scopeSelects(sc, side.ep))) return false;
  const nsc = entityNotScope(e);
  if (nsc && side.ep && res.scopeSelects(nsc, side.ep)) return false;
  const portHit = (ps: EntityMatch['ports']) =>
    (ps ?? []).some((x) => {
      if ('first' in x) return port !== undefined && port >= x.first && port <= x.last;
      // Named ports resolve on the destination endpoint, within the policy's (ingress) or rule's (egress) scope.
      const scope = ingressPolicy ? policyScope(ingressPolicy) : sc;
      if (!side.ep || (scope && !res.scopeSelects(scope, side.ep))) return false;
      return side.ep.namedPorts.some((np) => np.name === x.name && np.protocol === protocol && np.port === port);
    });
  if (e.ports && !portHit(e.ports)) return false;
  if (e.notPorts && portHit(e.notPorts)) return false;
  return true;
}
