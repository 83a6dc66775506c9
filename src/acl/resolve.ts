/**
 * Label-level semantics shared by the compiler (which turns them into ipset
 * members) and by explain (which evaluates them for one packet).
 */
import * as net from 'node:net';
import type * as IpAddress from 'ip-address';
import { DEFAULT_TIER, type Endpoint, type EntityMatch, type Family, type Policy, type PolicyInput, type Tier } from './model';
import { formatSelector, matchSelector, type Selector } from './selector';

/** Labels every namespace carries implicitly (Kubernetes sets this one on every namespace). */
export const NS_NAME_LABEL = 'kubernetes.io/metadata.name';
/** Calico exposes an endpoint's namespace as this label; Calico selectors use it. */
export const EP_NS_LABEL = 'projectcalico.org/namespace';

export class Resolver {
  private readonly nsLabels = new Map<string, Record<string, string>>();
  private readonly tenantByNs = new Map<string, string>();
  private readonly labelCache = new WeakMap<Endpoint, Record<string, string>>();
  private readonly selectedCache = new Map<string, Endpoint[]>();

  constructor(readonly input: PolicyInput) {
    for (const n of input.namespaces) this.nsLabels.set(n.name, { ...n.labels, [NS_NAME_LABEL]: n.name });
    for (const t of [...input.tenants].sort((a, b) => cmp(a.name, b.name))) for (const ns of t.namespaces) if (!this.tenantByNs.has(ns)) this.tenantByNs.set(ns, t.name);
  }

  namespaceLabels(ns: string): Record<string, string> {
    return this.nsLabels.get(ns) ?? { [NS_NAME_LABEL]: ns };
  }

  endpointLabels(ep: Endpoint): Record<string, string> {
    let l = this.labelCache.get(ep);
    if (!l) {
      l = { ...ep.labels, [EP_NS_LABEL]: ep.namespace };
      this.labelCache.set(ep, l);
    }
    return l;
  }

  /** Endpoints a scope selects, computed once per distinct scope. */
  selected(scope: Scope): Endpoint[] {
    const k = scopeKey(scope);
    let eps = this.selectedCache.get(k);
    if (!eps) {
      eps = this.input.endpoints.filter((e) => this.scopeSelects(scope, e));
      this.selectedCache.set(k, eps);
    }
    return eps;
  }

  /** Explicit tenant, then the endpoint's tenant label, a Tenant listing its namespace, the namespace's label; '' if none. */
  tenantOf(ep: Endpoint): string {
    const label = this.input.settings.tenantLabel;
    return ep.tenant ?? ep.labels[label] ?? this.tenantByNs.get(ep.namespace) ?? this.namespaceLabels(ep.namespace)[label] ?? '';
  }

  policySelects(p: Policy, ep: Endpoint): boolean {
    if (p.namespace !== undefined && p.namespace !== ep.namespace) return false;
    if (p.namespaceSelector && !matchSelector(p.namespaceSelector, this.namespaceLabels(ep.namespace))) return false;
    return matchSelector(p.selector, this.endpointLabels(ep));
  }

  scopeSelects(scope: Scope, ep: Endpoint): boolean {
    if (scope.namespace !== undefined && scope.namespace !== ep.namespace) return false;
    if (scope.namespaceSelector && !matchSelector(scope.namespaceSelector, this.namespaceLabels(ep.namespace))) return false;
    return matchSelector(scope.selector, this.endpointLabels(ep));
  }
}

/** An endpoint set described by labels: what one ipset of selected IPs holds. */
export interface Scope {
  selector: Selector;
  namespace?: string;
  namespaceSelector?: Selector;
}

export function scopeKey(s: Scope): string {
  const ns = s.namespace !== undefined ? `ns=${s.namespace}` : s.namespaceSelector ? `nssel=${formatSelector(s.namespaceSelector)}` : 'any';
  return `${ns}|${formatSelector(s.selector)}`;
}

export function policyScope(p: Policy): Scope {
  return { selector: p.selector, namespace: p.namespace, namespaceSelector: p.namespaceSelector };
}

export function entityScope(e: EntityMatch): Scope | undefined {
  return e.selector ? { selector: e.selector, namespace: e.namespace, namespaceSelector: e.namespaceSelector } : undefined;
}

export function entityNotScope(e: EntityMatch): Scope | undefined {
  return e.notSelector ? { selector: e.notSelector, namespace: e.namespace, namespaceSelector: e.namespaceSelector } : undefined;
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function familyOf(addr: string): Family {
  return net.isIP(addr.split('/')[0]) === 6 ? 6 : 4;
}

/** Tiers in evaluation order: by order (unset last), then name; tiers referenced but not declared come along unordered. */
export function orderedTiers(input: PolicyInput): Tier[] {
  const byName = new Map<string, Tier>();
  for (const t of input.tiers) byName.set(t.name, t);
  for (const p of input.policies) if (!byName.has(p.tier)) byName.set(p.tier, { name: p.tier, defaultAction: 'Deny' });
  if (!byName.has(DEFAULT_TIER) && input.policies.some((p) => p.tier === DEFAULT_TIER)) byName.set(DEFAULT_TIER, { name: DEFAULT_TIER, defaultAction: 'Deny' });
  return [...byName.values()].sort((a, b) => orderCmp(a.order, b.order) || cmp(a.name, b.name));
}

export function orderCmp(a: number | undefined, b: number | undefined): number {
  const x = a ?? Number.POSITIVE_INFINITY;
  const y = b ?? Number.POSITIVE_INFINITY;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Policies of a tier with a direction, in evaluation order: by order (unset last), then kind/namespace/name. */
export function tierPolicies(input: PolicyInput, tier: string, dir: 'ingress' | 'egress'): Policy[] {
  return input.policies
    .filter((p) => p.tier === tier && p.types[dir])
    .sort((a, b) => orderCmp(a.order, b.order) || cmp(`${a.kind}/${a.namespace ?? ''}/${a.name}`, `${b.kind}/${b.namespace ?? ''}/${b.name}`));
}

/** The bare address, IPv6 in the compressed form the kernel prints. */
export function addrOnly(ip: string): string {
  const a = ip.split('/')[0];
  if (!a.includes(':')) return a;
  // Loaded for IPv6 only: a CNI ADD on an IPv4 network compiles rules without it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Address6 } = require('ip-address') as typeof IpAddress;
  return new Address6(a).correctForm();
}

/** Does address `ip` fall inside `cidr`? (pure, both families) */
export function inCidr(ip: string, cidr: string): boolean {
  const [base, lenStr] = cidr.split('/');
  const fam = familyOf(base);
  if (familyOf(ip) !== fam) return false;
  const bits = fam === 4 ? 32 : 128;
  const len = lenStr === undefined ? bits : Number(lenStr);
  const a = toBig(ip, fam);
  const b = toBig(base, fam);
  const shift = BigInt(bits - len);
  return a >> shift === b >> shift;
}

function toBig(ip: string, fam: Family): bigint {
  if (fam === 4) return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}
