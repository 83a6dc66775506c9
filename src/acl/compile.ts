/**
 * Compiler (pure): policies + endpoints -> iptables chains and ipsets, per IP family.
 *
 * Layout (filter table). Which endpoints a policy's rules name is an ipset,
 * so a pod joining or leaving changes set members, plus its own endpoint
 * chains and the interface dispatch; a packet meets only the policies that
 * select its endpoints (Calico-style per-endpoint chains).
 *
 *   FORWARD -> tern-FORWARD   ESTABLISHED/RELATED accept first; fail closed and
 *                             anti-spoof with one (ip, iface) set lookup per side;
 *                             then tern-from-wl (egress) and tern-to-wl (ingress)
 *   INPUT   -> tern-INPUT     pod -> node: failsafe ports, anti-spoof, egress policy
 *   tern-to-wl / tern-from-wl clear the verdict marks, dispatch on the host veth
 *                             (-o / -i): a binary tree on its device group's bits
 *                             (tern-twg-* / tern-fwg-*), then by name (tern-twn / tern-fwn)
 *                             for a veth whose group is not the one its name gives
 *   tern-tw-<veth> / tern-fw-<veth>  one local endpoint: a jump per policy that
 *                             selects it, tier by tier, end-of-tier deny; tenant isolation
 *   tern-pi-* / tern-po-*     one policy's ingress / egress rules
 *
 * Ingress is judged last, so an ingress Allow is ACCEPT; egress verdicts and
 * Pass travel as mark bits (ACCEPT ends the egress chain, PASS skips to the
 * next tier). Traffic from the node itself takes OUTPUT, which Tern
 * never filters: node-local traffic is always allowed in.
 */
import * as crypto from 'node:crypto';
import { CHAIN_PREFIX, LINK_PREFIX } from '../lib/constants';
import { IFACE_GROUP_BITS, ifaceGroup } from '../lib/iface-group';
import { Proto, endpointKey, type Direction, type Endpoint, type EntityMatch, type Family, type Policy, type PolicyInput, type PortSpec, type Rule, type Tier } from './model';
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
  /** Reached by goto from a policy chain: set the verdict mark and return to the endpoint chain. */
  allow: `${CHAIN_PREFIX}allow`,
  pass: `${CHAIN_PREFIX}pass`,
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

/** Policies with at most this many rules in a direction are copied into the endpoint chains instead of jumped to. */
const INLINE_MAX = 2;

/** Interface names usable in chain names as they are. */
const SAFE_IFACE = /^[A-Za-z0-9_.]{1,15}$/;

/** An endpoint's chain: tern-tw-<veth> (ingress) / tern-fw-<veth> (egress); a hash when the name does not fit. */
export function endpointChain(iface: string, dir: Direction, hashed = false): string {
  const d = dir === 'ingress' ? 'tw' : 'fw';
  return !hashed && SAFE_IFACE.test(iface) ? `${CHAIN_PREFIX}${d}-${iface}` : `${CHAIN_PREFIX}${d}h-${shortHash(iface, 12)}`;
}

/** The dispatch by name, behind the one by device group: every leaf in one list. */
export function nameDispatchChain(dir: Direction): string {
  return `${CHAIN_PREFIX}${dir === 'ingress' ? 'tw' : 'fw'}n`;
}

/** A node of the device-group tree: every endpoint interface whose group's low `bits` bits equal `value`. */
export function groupDispatchChain(bits: number, value: number, dir: Direction): string {
  return `${CHAIN_PREFIX}${dir === 'ingress' ? 'tw' : 'fw'}g-${bits}-${value.toString(16)}`;
}

/** Below this many interfaces, a plain list costs no more than the group tree. */
const GROUP_TREE_MIN = 5;
/** nf_tables refuses a rule in a chain more than this many jumps or gotos below its base chain (NFT_JUMP_STACK_SIZE 16; seen: 15 nested gotos load, 16 fail with EMLINK). */
export const NFT_MAX_LEVEL = 15;
/** The dispatch's level: FORWARD -> tern-FORWARD -> tern-fw-from-ovl -> tern-to-wl. */
const DISPATCH_LEVEL = 3;
/** Levels a dispatch leaf leads to: the endpoint chain, a policy chain, tern-allow / tern-pass. */
const ENDPOINT_LEVELS = 3;

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

/**
 * What one compile hands the next, for one family, while the endpoints,
 * namespaces, tenants and settings are the same objects (CompileMemo).
 */
interface FamilyMemo {
  /** Set name -> the set and its membership function, as compiled. */
  sets: Map<string, { spec: IpSetSpec; of: ((ep: Endpoint) => string[]) | null }>;
  /** Per policy object and direction: its chain and the sets its rules name (a policy chain depends on the policy alone). */
  policies: WeakMap<Policy, Partial<Record<Direction, { chain: ChainSpec; sets: string[] }>>>;
  /** Per policy object: the local endpoints it selects, in local order. */
  selectsLocal: WeakMap<Policy, Endpoint[]>;
  /** Per endpoint: its addresses of this family. */
  ips: WeakMap<{ ips: string[] }, string[]>;
}

/**
 * Reuse between compiles (the daemon keeps one across its syncs): while the
 * endpoints, namespaces, tenants and settings of the input are the same
 * objects as the last compile's, a set is filled once, a policy's chain is
 * built once per policy object, and a policy is matched against the local
 * endpoints once. So a policy edit rebuilds the edited policy's chains and
 * sets and the endpoint chains, and reuses the rest; the output is the same
 * as without the memo (compile.test.ts checks random edits). Anything else
 * changed (an endpoint, a namespace, a tenant, a setting) starts afresh.
 * The input objects must not be changed in place once compiled: the daemon
 * parses each record once and replaces it when its text changes.
 */
export class CompileMemo {
  private world?: { endpoints: Endpoint[]; namespaces: PolicyInput['namespaces']; tenants: PolicyInput['tenants']; settings: string; node?: string; res: Resolver; fams: Map<Family, FamilyMemo> };
  /** Compiles that found the same world as the one before (reused what they could). */
  reused = 0;

  /** The resolver and family memos for `input`: the last ones if its world is the same objects, new ones otherwise. */
  take(input: PolicyInput, node: string | undefined): { res: Resolver; fams: Map<Family, FamilyMemo> } {
    const w = this.world;
    const same = <T>(a: T[], b: T[]) => a.length === b.length && a.every((x, i) => x === b[i]);
    const settings = JSON.stringify(input.settings);
    if (w && w.node === node && w.settings === settings && same(w.endpoints, input.endpoints) && same(w.namespaces, input.namespaces) && same(w.tenants, input.tenants)) {
      this.reused++;
      return w;
    }
    const fresh = () => ({ sets: new Map(), policies: new WeakMap(), selectsLocal: new WeakMap(), ips: new WeakMap() });
    this.world = { endpoints: [...input.endpoints], namespaces: [...input.namespaces], tenants: [...input.tenants], settings, node, res: new Resolver(input), fams: new Map([[4, fresh()], [6, fresh()]]) };
    return this.world;
  }
}

class FamilyCompiler {
  private readonly sets = new Map<string, IpSetSpec>();
  private readonly chains: ChainSpec[] = [];
  private readonly membership: SetMembership = new Map();
  private readonly emitted = new Set<string>();
  private readonly policies = new Map<string, ChainSpec>();
  /** The names of the sets added while a policy chain is being built (to replay them when the chain is reused). */
  private recording?: string[];

  constructor(
    private readonly fam: Family,
    private readonly input: PolicyInput,
    private readonly res: Resolver,
    private readonly node?: string,
    private readonly memo?: FamilyMemo,
  ) {
    this.ips = memo?.ips ?? new WeakMap();
  }

  /** Per endpoint: its addresses of this family (every set an endpoint joins asks again). */
  private readonly ips: WeakMap<{ ips: string[] }, string[]>;


  private ipsOf(ep: { ips: string[] }): string[] {
    let a = this.ips.get(ep);
    if (!a) this.ips.set(ep, (a = ep.ips.map(addrOnly).filter((ip) => familyOf(ip) === this.fam)));
    return a;
  }

  /** `of`: the members one endpoint contributes (null: none ever); `members` is what all of them add up to. */
  private addSet(kind: string, key: string, type: SetType, about: string, members: () => string[], of: ((ep: Endpoint) => string[]) | null): string {
    const name = setName(kind, this.fam, key);
    this.recording?.push(name);
    if (!this.sets.has(name)) {
      const m = this.memo?.sets.get(name);
      const spec = m?.spec ?? { name, type, family: this.fam, members: [...new Set(members())].sort(cmp), about };
      this.sets.set(name, spec);
      this.membership.set(name, m ? m.of : of);
      if (!m) this.memo?.sets.set(name, { spec, of });
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
          // Ingress is judged last (egress already passed): an accept is final. Egress marks it and goes on to ingress.
          for (const a of alts) rules.push(j(a, dir === 'ingress' ? '-j ACCEPT' : `-g ${CHAIN.allow}`));
          break;
        case 'Pass':
          for (const a of alts) rules.push(j(a, `-g ${CHAIN.pass}`));
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

  /** A policy's rules for a direction, compiled once; its chain is emitted only when some endpoint chain jumps to it. */
  private policyRules(p: Policy, dir: Direction): ChainSpec {
    const name = policyChain(p, dir);
    let c = this.policies.get(name);
    if (!c) this.policies.set(name, (c = this.memoPolicyChain(p, dir)));
    return c;
  }

  /** The policy's chain from the memo, its sets added again; built (and remembered) when the memo has not got it or one of its sets. */
  private memoPolicyChain(p: Policy, dir: Direction): ChainSpec {
    const hit = this.memo?.policies.get(p)?.[dir];
    if (hit && hit.sets.every((n) => this.sets.has(n) || this.memo!.sets.has(n))) {
      for (const n of hit.sets) {
        if (this.sets.has(n)) continue;
        const m = this.memo!.sets.get(n)!;
        this.sets.set(n, m.spec);
        this.membership.set(n, m.of);
      }
      return hit.chain;
    }
    if (!this.memo) return this.policyChain(p, dir);
    const outer = this.recording;
    this.recording = [];
    try {
      const chain = this.policyChain(p, dir);
      const entry = this.memo.policies.get(p) ?? {};
      entry[dir] = { chain, sets: [...new Set(this.recording)] };
      this.memo.policies.set(p, entry);
      return chain;
    } finally {
      this.recording = outer;
    }
  }

  /** The local endpoints a policy selects, in `local`'s order. */
  private selectedLocal(p: Policy, local: Endpoint[]): Endpoint[] {
    let eps = this.memo?.selectsLocal.get(p);
    if (!eps) {
      const scope = policyScope(p);
      eps = local.filter((ep) => this.res.scopeSelects(scope, ep));
      this.memo?.selectsLocal.set(p, eps);
    }
    return eps;
  }

  private policyChainOnce(c: ChainSpec): string {
    if (!this.emitted.has(c.name)) {
      this.emitted.add(c.name);
      this.chains.push(c);
    }
    return c.name;
  }

  /**
   * One endpoint's chain for a direction: the policies that select it, tier by
   * tier in evaluation order. An ingress Allow accepts on the spot; an egress
   * Allow sets the ACCEPT mark and a Pass the PASS mark (via tern-allow /
   * tern-pass), which skip the tier's later policies; ACCEPT ends the egress
   * chain, and a tier whose policies left no verdict drops (Deny tiers).
   * Ingress ends with tenant isolation for traffic no policy accepted.
   */
  private endpointRules(ep: Endpoint, dir: Direction, byTier: { tier: Tier; selects: Map<Endpoint, Policy[]> }[]): string[] {
    const rules: string[] = [];
    const ing = dir === 'ingress';
    const guard = `-m mark --mark 0x0/${hex(ing ? MARK_PASS : MARK_ACCEPT | MARK_PASS)}`;
    const mine = byTier.filter((t) => t.selects.has(ep));
    mine.forEach(({ tier, selects }, ti) => {
      if (ti) rules.push(`-j MARK --set-xmark 0x0/${hex(MARK_PASS)}`);
      selects.get(ep)!.forEach((p, i) => {
        const pc = this.policyRules(p, dir);
        const g = i ? `${guard} ` : '';
        // A short policy is copied in: its rules end the endpoint chain the way they would end the policy's
        // (DROP, ACCEPT, or tern-allow marking and returning past the rest), so the jump is saved. Pass must
        // come back here (to skip the tier's other policies), so a policy with a Pass keeps its chain.
        if (pc.rules.length <= INLINE_MAX && !pc.rules.some((r) => r.endsWith(`-g ${CHAIN.pass}`))) rules.push(...pc.rules.map((r) => g + r));
        else rules.push(`${g}-j ${this.policyChainOnce(pc)}`);
      });
      const deny = tier.defaultAction === 'Deny';
      if (!ing && (deny || ti < mine.length - 1)) rules.push(`-m mark --mark ${hex(MARK_ACCEPT)}/${hex(MARK_ACCEPT)} -j RETURN`);
      if (deny) rules.push(`-m mark --mark 0x0/${hex(MARK_PASS)} -j DROP`); // end of tier: no policy decided
    });
    const t = ing && this.input.settings.tenantIsolation ? this.res.tenantOf(ep) : '';
    if (t) {
      // No policy accepted: pods of different tenants may not talk.
      const all = this.addSet('tn', '*', 'hash:ip', 'endpoints that belong to a tenant', () => this.input.endpoints.filter((e) => this.res.tenantOf(e)).flatMap((e) => this.ipsOf(e)), (e) => (this.res.tenantOf(e) ? this.ipsOf(e) : []));
      const own = this.addSet('tn', t, 'hash:ip', `tenant ${t}`, () => this.input.endpoints.filter((e) => this.res.tenantOf(e) === t).flatMap((e) => this.ipsOf(e)), (e) => (this.res.tenantOf(e) === t ? this.ipsOf(e) : []));
      rules.push(`-m set --match-set ${all} src -m set ! --match-set ${own} src -j DROP`);
    }
    return rules;
  }

  /**
   * tern-to-wl / tern-from-wl: clear the verdict marks, then find the packet's
   * endpoint chain by its host interface (-o for ingress, -i for egress). The
   * dispatch is a prefix tree over the interface names, so it costs a few
   * rules per character level at any pod count; an interface with no chain
   * (no policy selects its pod) falls out of the tree and is allowed.
   */
  private direction(dir: Direction, local: Endpoint[]): ChainSpec {
    const ing = dir === 'ingress';
    const top: ChainSpec = { name: ing ? CHAIN.toWl : CHAIN.fromWl, rules: [`-j MARK --set-xmark 0x0/${hex(MARK_ACCEPT | MARK_PASS)}`] };
    // Only local endpoints have chains: a policy is matched against them alone, not against every endpoint of the cluster.
    const byTier = orderedTiers(this.input).map((tier) => {
      const selects = new Map<Endpoint, Policy[]>();
      for (const p of tierPolicies(this.input, tier.name, dir)) {
        for (const ep of this.selectedLocal(p, local)) {
          const l = selects.get(ep);
          if (l) l.push(p);
          else selects.set(ep, [p]);
        }
      }
      return { tier, selects };
    });
    const byIface = new Map<string, Endpoint[]>();
    for (const ep of local) byIface.set(ep.hostIface, [...(byIface.get(ep.hostIface) ?? []), ep]);
    const flag = ing ? '-o' : '-i';
    const leaves: { iface: string; rules: string[] }[] = [];
    for (const [iface, eps] of [...byIface].sort(([a], [b]) => cmp(a, b))) {
      const chains = eps
        .sort((a, b) => cmp(endpointKey(a), endpointKey(b)))
        .map((ep) => ({ ep, rules: this.endpointRules(ep, dir, byTier) }))
        .filter((c) => c.rules.length)
        .map((c) => ({ ...c, name: eps.length === 1 ? endpointChain(iface, dir) : endpointChain(endpointKey(c.ep), dir, true) }));
      if (!chains.length) continue;
      for (const c of chains) this.chains.push({ name: c.name, rules: c.rules });
      if (eps.length === 1) leaves.push({ iface, rules: [`${flag} ${iface} -g ${chains[0].name}`] });
      else {
        // Two records on one interface (a stale one): each address to its own endpoint's chain, anything else dropped.
        const side = ing ? '-d' : '-s';
        const rules = chains.flatMap((c) => this.ipsOf(c.ep).map((ip) => `${flag} ${iface} ${side} ${ip} -g ${c.name}`));
        leaves.push({ iface, rules: [...rules, `${flag} ${iface} -j DROP`] });
      }
    }
    if (leaves.length < GROUP_TREE_MIN) top.rules.push(...leaves.flatMap((l) => l.rules));
    else {
      const byName = nameDispatchChain(dir);
      this.chains.push({ name: byName, rules: leaves.flatMap((l) => l.rules) });
      // Group chains may nest this deep: below a leaf come byName and the endpoint's levels, all within nf_tables' limit.
      const depth = NFT_MAX_LEVEL - DISPATCH_LEVEL - ENDPOINT_LEVELS - 1;
      const bits = Math.max(1, Math.ceil(Math.log2(Math.max(2, leaves.length / 2)) / depth));
      top.rules.push(...this.groupTree(leaves.map((l) => ({ ...l, group: ifaceGroup(l.iface) })), { dir, bits, depth, byName }, 0, 0));
    }
    return top;
  }

  /**
   * Rules that find each leaf by its interface's device group, `bits` bits per
   * level: a rule per value sends that side to its own chain and the last
   * side follows in line, so a level costs at most 2^bits - 1 rules (one, for
   * one bit). Chains nest at most `depth` deep; there the leaves are listed.
   * A leaf checks the name, and whatever reaches it without matching (a veth
   * whose group is not its name's) goes on through the list by name, so it
   * never skips its chain.
   */
  private groupTree(leaves: { iface: string; group: number; rules: string[] }[], t: { dir: Direction; bits: number; depth: number; byName: string }, bit: number, depth: number): string[] {
    if (leaves.length <= 2 || bit >= IFACE_GROUP_BITS || depth >= t.depth) return [...leaves.flatMap((l) => l.rules), `-g ${t.byName}`];
    const w = Math.min(t.bits, IFACE_GROUP_BITS - bit);
    const mask = ((1 << w) - 1) << bit;
    const sides = new Map<number, typeof leaves>();
    for (const l of leaves) sides.set(l.group & mask, [...(sides.get(l.group & mask) ?? []), l]);
    const keys = [...sides.keys()].sort((x, y) => x - y);
    if (keys.length === 1) return this.groupTree(leaves, t, bit + w, depth); // bits that split nothing cost no rule
    const out: string[] = [];
    for (const k of keys.slice(0, -1)) {
      const side = sides.get(k)!;
      const name = groupDispatchChain(bit + w, side[0].group & ((1 << (bit + w)) - 1), t.dir);
      this.chains.push({ name, rules: this.groupTree(side, t, bit + w, depth + 1) });
      out.push(`-m devgroup ${t.dir === 'ingress' ? '--dst-group' : '--src-group'} ${hex(k)}/${hex(mask)} -g ${name}`);
    }
    return [...out, ...this.groupTree(sides.get(keys.at(-1)!)!, t, bit + w, depth)];
  }

  compile(): FamilyRuleset {
    const ep = endpointSetName(this.fam);
    const gateOf = (e: Endpoint) => this.ipsOf(e).map((ip) => `${ip}/${this.fam === 4 ? 32 : 128},${e.hostIface}`);
    const memoGate = this.memo?.sets.get(ep);
    this.membership.set(ep, memoGate?.of ?? gateOf);
    const gate: IpSetSpec = memoGate?.spec ?? {
      name: ep,
      type: 'hash:net,iface',
      family: this.fam,
      members: [...new Set(this.input.endpoints.flatMap(gateOf))].sort(cmp),
      about: 'every endpoint address with its host interface',
    };
    this.sets.set(ep, gate);
    if (!memoGate) this.memo?.sets.set(ep, { spec: gate, of: gateOf });
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
    const local = this.input.endpoints.filter((e) => (this.node === undefined || e.node === undefined || e.node === this.node) && this.ipsOf(e).length);
    const to = this.direction('ingress', local);
    const from = this.direction('egress', local);
    const policyAndTier = this.chains.sort((a, b) => cmp(a.name, b.name));
    const allow: ChainSpec = { name: CHAIN.allow, rules: [`-j MARK --set-xmark ${hex(MARK_ACCEPT)}/${hex(MARK_ACCEPT)}`] };
    const pass: ChainSpec = { name: CHAIN.pass, rules: [`-j MARK --set-xmark ${hex(MARK_PASS)}/${hex(MARK_PASS)}`] };
    const rs: FamilyRuleset = {
      family: this.fam,
      chains: [forward, fromOverlay, toOverlay, input, from, to, allow, pass, ...policyAndTier],
      hooks: [
        { table: 'filter', chain: 'FORWARD', match: '', target: CHAIN.forward },
        { table: 'filter', chain: 'INPUT', match: `-i ${w}`, target: CHAIN.input },
      ],
      sets: [...this.sets.values()].sort((a, b) => cmp(a.name, b.name)),
    };
    membership.set(rs, this.membership);
    // The memo keeps the sets of this compile only: a policy whose sets were dropped is built again when it returns.
    if (this.memo) for (const name of this.memo.sets.keys()) if (!this.sets.has(name)) this.memo.sets.delete(name);
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

export interface CompileOptions {
  /** This node's name: endpoint chains are built only for endpoints on it (and for endpoints with no node recorded). */
  node?: string;
  /** What the last compile with this memo can lend this one (see CompileMemo). */
  memo?: CompileMemo;
}

export function compileRuleset(input: PolicyInput, opts: CompileOptions = {}): CompiledRuleset {
  const m = opts.memo?.take(input, opts.node);
  const res = m?.res ?? new Resolver(input);
  return { v4: new FamilyCompiler(4, input, res, opts.node, m?.fams.get(4)).compile(), v6: new FamilyCompiler(6, input, res, opts.node, m?.fams.get(6)).compile() };
}
