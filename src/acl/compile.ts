/**
 * Compiler (pure): policies + endpoints -> iptables chains and ipsets, per IP family.
 *
 * Layout (filter table). Rules are written per policy, not per endpoint: which
 * endpoints a policy or rule applies to is an ipset, so a pod joining or
 * leaving changes set members only, and the rules a packet traverses depend on
 * the policies, never on the pod count.
 *
 *   FORWARD -> tern-FORWARD   ESTABLISHED/RELATED accept first; fail closed and
 *                             anti-spoof with one (ip, iface) set lookup per side;
 *                             then tern-from-wl (egress) and tern-to-wl (ingress)
 *   INPUT   -> tern-INPUT     pod -> node: failsafe ports, anti-spoof, egress policy
 *   tern-to-wl / tern-from-wl one jump per tier, then tenant isolation
 *   tern-ti-* / tern-te-*     one tier: a jump per policy guarded by the policy's
 *                             endpoint set, then end-of-tier deny for selected pods
 *   tern-pi-* / tern-po-*     one policy's ingress / egress rules
 *
 * Verdicts inside a tier travel as mark bits: ACCEPT ends evaluation, PASS
 * skips to the next tier. Traffic from the node itself takes OUTPUT, which Tern
 * never filters: node-local traffic is always allowed in.
 */
import * as crypto from 'node:crypto';
import { CHAIN_PREFIX, LINK_PREFIX } from '../lib/constants';
import { Proto, type Direction, type Endpoint, type EntityMatch, type Family, type Policy, type PolicyInput, type PortSpec, type Rule } from './model';
import { Resolver, addrOnly, cmp, entityNotScope, entityScope, familyOf, orderedTiers, policyScope, scopeKey, tierPolicies, type Scope } from './resolve';

export const MARK_ACCEPT = 0x10000;
export const MARK_PASS = 0x20000;
const hex = (n: number) => `0x${n.toString(16)}`;

export const FAILSAFE_TCP = [22, 179, 2379, 2380];
export const FAILSAFE_UDP4 = [67, 68];
export const FAILSAFE_UDP6 = [546, 547];

export type SetType = 'hash:ip' | 'hash:net' | 'hash:ip,port' | 'hash:net,iface';

export interface IpSetSpec {
  name: string;
  type: SetType;
  family: Family;
  /** Sorted, rendered members. */
  members: string[];
  /** What the set stands for (shown by `policy show`). */
  about: string;
}

export interface ChainSpec {
  name: string;
  /** Rule bodies (everything after `-A <chain>`), without the hash comment. */
  rules: string[];
}

export interface Hook {
  table: 'filter';
  chain: 'FORWARD' | 'INPUT';
  /** Match before the jump (empty for none). */
  match: string;
  target: string;
}

export interface FamilyRuleset {
  family: Family;
  chains: ChainSpec[];
  hooks: Hook[];
  sets: IpSetSpec[];
}

export interface CompiledRuleset {
  v4: FamilyRuleset;
  v6: FamilyRuleset;
}

export const CHAIN = {
  forward: `${CHAIN_PREFIX}FORWARD`,
  input: `${CHAIN_PREFIX}INPUT`,
  toWl: `${CHAIN_PREFIX}to-wl`,
  fromWl: `${CHAIN_PREFIX}from-wl`,
  fromOverlay: `${CHAIN_PREFIX}fw-from-ovl`,
  toOverlay: `${CHAIN_PREFIX}fw-to-ovl`,
} as const;

/**
 * The VXLAN VTEP (overlay VTEP_NAME) shares the link prefix of the host veths,
 * so `tern+` matches it too: it is never a workload interface. Traffic in from
 * the overlay is judged only on its workload side (ingress policy of a local
 * pod), traffic out to it only on its workload side (the local pod's source
 * check and egress policy).
 */
export const OVERLAY_IFACE = 'tern.vxlan';

/**
 * VLAN-mode pods hang off a per-VLAN bridge (`ternbr<vid>`, overlay vlan-plan);
 * they are no ACL endpoints, and with br_netfilter their bridged traffic shows
 * the bridge as its interface: not ours to judge.
 */
export const VLAN_BRIDGES = `${LINK_PREFIX}br+`;

export function shortHash(s: string, n = 16): string {
  return crypto.createHash('sha256').update(s).digest('hex').slice(0, n);
}

export function policyChain(p: Pick<Policy, 'kind' | 'namespace' | 'name'>, dir: Direction): string {
  return `${CHAIN_PREFIX}p${dir === 'ingress' ? 'i' : 'o'}-${shortHash(`${p.kind}/${p.namespace ?? ''}/${p.name}`)}`;
}

export function tierChain(tier: string, dir: Direction): string {
  return `${CHAIN_PREFIX}t${dir === 'ingress' ? 'i' : 'e'}-${shortHash(tier)}`;
}

/** The name of a set of `kind` standing for `key` (names are content hashes). */
export function setName(kind: string, fam: Family, key: string): string {
  return `${CHAIN_PREFIX}${kind}${fam}-${shortHash(`${kind}|${key}`)}`;
}

/**
 * Per set of a compiled family, the members one endpoint contributes, or null
 * for a set no endpoint changes (CIDRs). Kept beside the ruleset, not in it
 * (functions; rulesets are compared as data): the incremental path
 * (incremental.ts) admits a pod with these instead of compiling again.
 */
export type SetMembership = Map<string, ((ep: Endpoint) => string[]) | null>;
const membership = new WeakMap<FamilyRuleset, SetMembership>();

export function setMembership(rs: FamilyRuleset): SetMembership | undefined {
  return membership.get(rs);
}

export function endpointSetName(fam: Family): string {
  return `${CHAIN_PREFIX}ep${fam}`;
}

const PROTO_NAME: Record<number, string> = { [Proto.ICMP]: 'icmp', [Proto.TCP]: 'tcp', [Proto.UDP]: 'udp', [Proto.ICMPV6]: 'ipv6-icmp', [Proto.SCTP]: 'sctp' };
const SET_PROTO: Record<number, string> = { [Proto.TCP]: 'tcp', [Proto.UDP]: 'udp', [Proto.SCTP]: 'sctp' };

function protoArg(n: number): string {
  return PROTO_NAME[n] ?? String(n);
}

class FamilyCompiler {
  private readonly sets = new Map<string, IpSetSpec>();
  private readonly chains: ChainSpec[] = [];
  private readonly membership: SetMembership = new Map();

  constructor(
    private readonly fam: Family,
    private readonly input: PolicyInput,
    private readonly res: Resolver,
  ) {}

  private ipsOf(ep: { ips: string[] }): string[] {
    return ep.ips.map(addrOnly).filter((ip) => familyOf(ip) === this.fam);
  }

  /** `of`: the members one endpoint contributes (null: none ever); `members` is what all of them add up to. */
  private addSet(kind: string, key: string, type: SetType, about: string, members: () => string[], of: ((ep: Endpoint) => string[]) | null): string {
    const name = setName(kind, this.fam, key);
    if (!this.sets.has(name)) {
      this.sets.set(name, { name, type, family: this.fam, members: [...new Set(members())].sort(cmp), about });
      this.membership.set(name, of);
    }
    return name;
  }

  scopeSet(scope: Scope): string {
    const key = scopeKey(scope);
    return this.addSet('s', key, 'hash:ip', `endpoints ${key}`, () => this.res.selected(scope).flatMap((e) => this.ipsOf(e)), (e) => (this.res.scopeSelects(scope, e) ? this.ipsOf(e) : []));
  }

  private netSet(cidrs: string[]): string {
    const sorted = [...cidrs].sort(cmp);
    return this.addSet('n', sorted.join(','), 'hash:net', `nets ${sorted.join(',')}`, () => sorted, null);
  }

  private namedPortSet(name: string, proto: number, scope: Scope | undefined): string {
    const key = `${name}/${proto}|${scope ? scopeKey(scope) : 'any'}`;
    const of = (e: Endpoint) => e.namedPorts.filter((np) => np.name === name && np.protocol === proto).flatMap((np) => this.ipsOf(e).map((ip) => `${ip},${SET_PROTO[proto]}:${np.port}`));
    return this.addSet('p', key, 'hash:ip,port', `named port ${key}`, () => (scope ? this.res.selected(scope) : this.input.endpoints).flatMap(of), (e) => (!scope || this.res.scopeSelects(scope, e) ? of(e) : []));
  }

  /** Matches for one side's nets; undefined when the rule cannot match in this family. */
  private netMatch(nets: string[] | undefined, not: boolean, flag: '-s' | '-d', dirw: 'src' | 'dst'): string[] | undefined {
    if (nets === undefined) return [];
    const mine = nets.filter((n) => familyOf(n) === this.fam);
    if (mine.some((n) => n.endsWith('/0'))) return not ? undefined : []; // "everything" needs no match
    if (mine.length === 0) return not ? [] : undefined;
    // iptables takes one -s/-d per rule, so exclusions always go through a set.
    if (mine.length === 1 && !not) return [`${flag} ${mine[0]}`];
    return [`-m set ${not ? '! ' : ''}--match-set ${this.netSet(mine)} ${dirw}`];
  }

  /**
   * One Tern rule -> alternatives (each a list of matches, ANDed); the rule
   * matches when any alternative does. Empty result: cannot match here.
   */
  private ruleMatches(rule: Rule, dir: Direction, policy: Policy): string[][] {
    if (rule.ipVersion && rule.ipVersion !== this.fam) return [];
    if (rule.protocol === Proto.ICMP && this.fam === 6) return [];
    if (rule.protocol === Proto.ICMPV6 && this.fam === 4) return [];
    const m: string[] = [];
    if (rule.protocol !== undefined) m.push(`-p ${protoArg(rule.protocol)}`);
    if (rule.notProtocol !== undefined && !(rule.notProtocol === Proto.ICMP && this.fam === 6) && !(rule.notProtocol === Proto.ICMPV6 && this.fam === 4)) m.push(`! -p ${protoArg(rule.notProtocol)}`);
    const icmpArg = (t: { type: number; code?: number }) => (t.code === undefined ? `${t.type}` : `${t.type}/${t.code}`);
    if (rule.icmp) m.push(this.fam === 4 ? `-m icmp --icmp-type ${icmpArg(rule.icmp)}` : `-m icmp6 --icmpv6-type ${icmpArg(rule.icmp)}`);
    if (rule.notICMP) m.push(this.fam === 4 ? `-m icmp ! --icmp-type ${icmpArg(rule.notICMP)}` : `-m icmp6 ! --icmpv6-type ${icmpArg(rule.notICMP)}`);
    for (const [side, e] of [
      ['src', rule.source],
      ['dst', rule.destination],
    ] as const) {
      const flag = side === 'src' ? '-s' : '-d';
      const nets = this.netMatch(e.nets, false, flag, side);
      const notNets = this.netMatch(e.notNets, true, flag, side);
      if (!nets || !notNets) return [];
      m.push(...nets, ...notNets);
      const sc = entityScope(e);
      if (sc) m.push(`-m set --match-set ${this.scopeSet(sc)} ${side}`);
      const nsc = entityNotScope(e);
      if (nsc) m.push(`-m set ! --match-set ${this.scopeSet(nsc)} ${side}`);
      const numeric = (ps: PortSpec[]) => ps.filter((p): p is { first: number; last: number } => 'first' in p).map((p) => (p.first === p.last ? `${p.first}` : `${p.first}:${p.last}`));
      const flagP = side === 'src' ? '--sports' : '--dports';
      for (const chunk of chunkPorts(numeric(e.notPorts ?? []))) m.push(`-m multiport ! ${flagP} ${chunk}`);
      for (const p of e.notPorts ?? []) if ('name' in p) m.push(`-m set ! --match-set ${this.namedPortSet(p.name, rule.protocol!, this.namedScope(dir, policy, e))} dst,dst`);
    }
    // Positive ports are alternatives: numeric chunks, and one per named port.
    let alts: string[][] = [m];
    for (const [side, e] of [
      ['src', rule.source],
      ['dst', rule.destination],
    ] as const) {
      if (!e.ports) continue;
      const flagP = side === 'src' ? '--sports' : '--dports';
      const opts: string[] = [];
      const nums = e.ports.filter((p): p is { first: number; last: number } => 'first' in p).map((p) => (p.first === p.last ? `${p.first}` : `${p.first}:${p.last}`));
      for (const chunk of chunkPorts(nums)) opts.push(`-m multiport ${flagP} ${chunk}`);
      for (const p of e.ports) if ('name' in p) opts.push(`-m set --match-set ${this.namedPortSet(p.name, rule.protocol!, this.namedScope(dir, policy, e))} dst,dst`);
      alts = alts.flatMap((a) => opts.map((o) => [...a, o]));
    }
    return alts;
  }

  /** Named ports resolve on the destination: the policy's own endpoints on ingress, the rule's destination on egress. */
  private namedScope(dir: Direction, policy: Policy, dst: EntityMatch): Scope | undefined {
    return dir === 'ingress' ? policyScope(policy) : entityScope(dst);
  }

  private policyChain(p: Policy, dir: Direction): ChainSpec {
    const rules: string[] = [];
    const prefix = `tern ${shortHash(`${p.kind}/${p.namespace ?? ''}/${p.name}`, 8)}: `;
    for (const rule of p[dir]) {
      const alts = this.ruleMatches(rule, dir, p);
      if (alts.length === 0) continue;
      const j = (a: string[], target: string) => [...a, target].join(' ');
      switch (rule.action) {
        case 'Allow':
          for (const a of alts) rules.push(j(a, `-j MARK --set-xmark ${hex(MARK_ACCEPT)}/${hex(MARK_ACCEPT)}`));
          rules.push(`-m mark --mark ${hex(MARK_ACCEPT)}/${hex(MARK_ACCEPT)} -j RETURN`);
          break;
        case 'Pass':
          for (const a of alts) rules.push(j(a, `-j MARK --set-xmark ${hex(MARK_PASS)}/${hex(MARK_PASS)}`));
          rules.push(`-m mark --mark ${hex(MARK_PASS)}/${hex(MARK_PASS)} -j RETURN`);
          break;
        case 'Deny':
          for (const a of alts) rules.push(j(a, '-j DROP'));
          break;
        case 'Log':
          for (const a of alts) rules.push(j(a, `-j LOG --log-prefix "${prefix}"`));
          break;
      }
    }
    return { name: policyChain(p, dir), rules };
  }

  private direction(dir: Direction): ChainSpec {
    const side = dir === 'ingress' ? 'dst' : 'src';
    const top: ChainSpec = { name: dir === 'ingress' ? CHAIN.toWl : CHAIN.fromWl, rules: [`-j MARK --set-xmark 0x0/${hex(MARK_ACCEPT | MARK_PASS)}`] };
    for (const tier of orderedTiers(this.input)) {
      const pols = tierPolicies(this.input, tier.name, dir);
      if (pols.length === 0) continue;
      const tc: ChainSpec = { name: tierChain(tier.name, dir), rules: [`-j MARK --set-xmark 0x0/${hex(MARK_PASS)}`] };
      const selected = new Set<string>();
      const scopes = pols.map(policyScope);
      for (const p of pols) {
        const set = this.scopeSet(policyScope(p));
        for (const ep of this.res.selected(policyScope(p))) for (const ip of this.ipsOf(ep)) selected.add(ip);
        const pc = this.policyChain(p, dir);
        this.chains.push(pc);
        tc.rules.push(`-m set --match-set ${set} ${side} -j ${pc.name}`);
        tc.rules.push(`-m mark --mark ${hex(MARK_ACCEPT)}/${hex(MARK_ACCEPT)} -j RETURN`);
        tc.rules.push(`-m mark --mark ${hex(MARK_PASS)}/${hex(MARK_PASS)} -j RETURN`);
      }
      if (tier.defaultAction === 'Deny') {
        // End-of-tier deny, only for endpoints some policy of this tier selects.
        const ts = this.addSet(`t${dir === 'ingress' ? 'i' : 'e'}`, tier.name, 'hash:ip', `endpoints with ${dir} policy in tier ${tier.name}`, () => [...selected], (e) => (scopes.some((sc) => this.res.scopeSelects(sc, e)) ? this.ipsOf(e) : []));
        tc.rules.push(`-m set --match-set ${ts} ${side} -j DROP`);
      }
      this.chains.push(tc);
      top.rules.push(`-j ${tc.name}`);
      top.rules.push(`-m mark --mark ${hex(MARK_ACCEPT)}/${hex(MARK_ACCEPT)} -j RETURN`);
    }
    if (dir === 'ingress' && this.input.settings.tenantIsolation) {
      // No policy decided: pods of different tenants may not talk.
      const tenants = new Map<string, string[]>();
      for (const ep of this.input.endpoints) {
        const t = this.res.tenantOf(ep);
        if (t) tenants.set(t, [...(tenants.get(t) ?? []), ...this.ipsOf(ep)]);
      }
      for (const t of this.input.tenants) if (!tenants.has(t.name)) tenants.set(t.name, []);
      const all = this.addSet('tn', '*', 'hash:ip', 'endpoints that belong to a tenant', () => [...tenants.values()].flat(), (e) => (this.res.tenantOf(e) ? this.ipsOf(e) : []));
      for (const t of [...tenants.keys()].sort(cmp)) {
        const ts = this.addSet('tn', t, 'hash:ip', `tenant ${t}`, () => tenants.get(t)!, (e) => (this.res.tenantOf(e) === t ? this.ipsOf(e) : []));
        top.rules.push(`-m set --match-set ${ts} dst -m set --match-set ${all} src -m set ! --match-set ${ts} src -j DROP`);
      }
    }
    return top;
  }

  compile(): FamilyRuleset {
    const ep = endpointSetName(this.fam);
    this.membership.set(ep, (e) => this.ipsOf(e).map((ip) => `${ip}/${this.fam === 4 ? 32 : 128},${e.hostIface}`));
    this.sets.set(ep, {
      name: ep,
      type: 'hash:net,iface',
      family: this.fam,
      members: [...new Set(this.input.endpoints.flatMap((e) => this.ipsOf(e).map((ip) => `${ip}/${this.fam === 4 ? 32 : 128},${e.hostIface}`)))].sort(cmp),
      about: 'every endpoint address with its host interface',
    });
    const w = `${LINK_PREFIX}+`;
    const est = '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT';
    const inv = '-m conntrack --ctstate INVALID -j DROP';
    const forward: ChainSpec = {
      name: CHAIN.forward,
      rules: [
        `-i ${w} ${est}`,
        `-o ${w} ${est}`,
        `-i ${w} ${inv}`,
        `-o ${w} ${inv}`,
        // Fail closed and anti-spoof: the (source address, interface) pair must be a programmed endpoint.
        `-i ${VLAN_BRIDGES} -j RETURN`,
        `-o ${VLAN_BRIDGES} -j RETURN`,
        `-i ${OVERLAY_IFACE} -g ${CHAIN.fromOverlay}`,
        `-o ${OVERLAY_IFACE} -g ${CHAIN.toOverlay}`,
        `-i ${w} -m set ! --match-set ${ep} src,src -j DROP`,
        `-o ${w} -m set ! --match-set ${ep} dst,dst -j DROP`,
        `-i ${w} -j ${CHAIN.fromWl}`,
        `-o ${w} -j ${CHAIN.toWl}`,
        `-i ${w} -j ACCEPT`,
        `-o ${w} -j ACCEPT`,
      ],
    };
    const fromOverlay: ChainSpec = {
      name: CHAIN.fromOverlay,
      rules: [`-o ${OVERLAY_IFACE} -j RETURN`, `-o ${w} -m set ! --match-set ${ep} dst,dst -j DROP`, `-o ${w} -j ${CHAIN.toWl}`, `-o ${w} -j ACCEPT`],
    };
    const toOverlay: ChainSpec = {
      name: CHAIN.toOverlay,
      rules: [`-i ${w} -m set ! --match-set ${ep} src,src -j DROP`, `-i ${w} -j ${CHAIN.fromWl}`, `-i ${w} -j ACCEPT`],
    };
    const input: ChainSpec = {
      name: CHAIN.input,
      rules: [
        `-i ${OVERLAY_IFACE} -j RETURN`, // a remote pod reaching this node: not a local workload's traffic
        `-i ${VLAN_BRIDGES} -j RETURN`,
        est,
        inv,
        ...(this.fam === 6 ? ['-p ipv6-icmp -m icmp6 --icmpv6-type 133 -j ACCEPT', '-p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT', '-p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT'] : []),
        // Failsafe: the node's own services stay reachable whatever the policies say.
        `-p tcp -m multiport --dports ${FAILSAFE_TCP.join(',')} -j ACCEPT`,
        `-p udp -m multiport --dports ${(this.fam === 4 ? FAILSAFE_UDP4 : FAILSAFE_UDP6).join(',')} -j ACCEPT`,
        `-m set ! --match-set ${ep} src,src -j DROP`,
        `-j ${CHAIN.fromWl}`,
        '-j ACCEPT',
      ],
    };
    const to = this.direction('ingress');
    const from = this.direction('egress');
    const policyAndTier = this.chains.sort((a, b) => cmp(a.name, b.name));
    const rs: FamilyRuleset = {
      family: this.fam,
      chains: [forward, fromOverlay, toOverlay, input, from, to, ...policyAndTier],
      hooks: [
        { table: 'filter', chain: 'FORWARD', match: '', target: CHAIN.forward },
        { table: 'filter', chain: 'INPUT', match: `-i ${w}`, target: CHAIN.input },
      ],
      sets: [...this.sets.values()].sort((a, b) => cmp(a.name, b.name)),
    };
    membership.set(rs, this.membership);
    return rs;
  }
}

/** multiport takes at most 15 ports, a range counting as two. */
function chunkPorts(ports: string[]): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  let weight = 0;
  for (const p of ports) {
    const w = p.includes(':') ? 2 : 1;
    if (weight + w > 15) {
      out.push(cur.join(','));
      cur = [];
      weight = 0;
    }
    cur.push(p);
    weight += w;
  }
  if (cur.length) out.push(cur.join(','));
  return out;
}

export function compileRuleset(input: PolicyInput): CompiledRuleset {
  const res = new Resolver(input);
  return { v4: new FamilyCompiler(4, input, res).compile(), v6: new FamilyCompiler(6, input, res).compile() };
}
