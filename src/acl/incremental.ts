/**
 * The incremental path (pure): pods joining, leaving or changing with nothing
 * else changed become ipset member changes only, with no compile and no
 * `iptables-save`/`ipset save`. It starts from what the last full compile
 * produced and was applied (remembered in memory), and works only while the
 * chains do not depend on the change. Other nodes' endpoints appear in sets
 * only. This node's endpoints have chains of their own when a policy selects
 * them or they have a tenant (per-endpoint chains and their dispatch leaf), so
 * those take the full compile, as do a tenant appearing or vanishing, a shared
 * address or interface, and any change to a policy, tier, tenant, namespace or
 * setting.
 *
 * The lines keep the apply order of applier.ts (`planSets`): the gate entries
 * of every changed endpoint close first, then the other sets' members change,
 * then the gate entries of the new state open. `ipset restore` applies its
 * lines one by one in order, so a joining pod is admitted last and a leaving
 * one refused first.
 */
import { endpointSetName, setMembership, type CompiledRuleset, type SetMembership, type SetType } from './compile';
import type { MemberOp } from '../dataplane/ipset-codec';
import type { Endpoint } from './model';
import type { Resource } from './parse';
import { Resolver, addrOnly, policyScope, type Scope } from './resolve';
import { toInput } from './state';
import { ACL_PREFIX, resourceKey } from './store';

/** A stored resource as the datastore holds it: its key (kind and name) and its JSON text. */
export interface StoredText {
  key: string;
  value: string;
}

interface Remembered {
  /** Every resource as compiled: datastore key -> JSON text (compared as text: nothing unchanged is parsed). */
  texts: Map<string, string>;
  endpoints: Map<string, Endpoint>;
  /** Per family: the gate set, and every other set with the members one endpoint contributes. */
  families: { gate: string; of: (ep: Endpoint) => string[]; sets: [string, (ep: Endpoint) => string[]][] }[];
  /** Every set's type (the member writer encodes by type). */
  types: Map<string, SetType>;
  res: Resolver;
  /** Endpoints per address: an address two endpoints share is left to the compiler. */
  addrs: Map<string, number>;
  /** With tenant isolation: endpoints per tenant, and the declared tenants (both have rules); undefined without it. */
  tenants?: Map<string, number>;
  declaredTenants: Set<string>;
  /** Every policy's scope: a local endpoint some policy selects has chains of its own. */
  scopes: Scope[];
  tenantIsolation: boolean;
}

export interface IncrementalPlan {
  /** `ipset restore -exist` input, in apply order; empty when nothing changed. */
  lines: string[];
  /** The same changes, one member each, for the netlink writer. */
  ops: MemberOp[];
  joined: number;
  left: number;
  changed: number;
  /** The endpoint records that changed: datastore key -> new text and endpoint (undefined: gone). */
  updates: Map<string, { value: string; ep: Endpoint } | undefined>;
}

const ENDPOINT_KEY = `${ACL_PREFIX}Endpoint/`;

const bump = (m: Map<string, number>, k: string, d: number) => {
  const n = (m.get(k) ?? 0) + d;
  if (n) m.set(k, n);
  else m.delete(k);
};

export class IncrementalAcl {
  private last?: Remembered;

  /**
   * `node`: this node's name. The compiler builds chains for this node's own
   * endpoints (and those with no node recorded), so only other nodes' endpoints
   * change nothing but set members; without a node every endpoint is local.
   */
  constructor(private readonly node?: string) {}

  private isLocal(e: Endpoint): boolean {
    return this.node === undefined || e.node === undefined || e.node === this.node;
  }

  /** Whether a full compile has been remembered (the incremental path is available). */
  get ready(): boolean {
    return !!this.last;
  }

  /**
   * After a full compile was applied: `stored` (as listed, `resources` the
   * same parsed) compiled to `rs`. A ruleset without set memberships disables the path.
   */
  remember(stored: StoredText[], resources: Resource[], rs: CompiledRuleset): void {
    const families: Remembered['families'] = [];
    const types = new Map<string, SetType>();
    for (const fam of [rs.v4, rs.v6]) {
      for (const s of fam.sets) types.set(s.name, s.type);
      const m: SetMembership | undefined = setMembership(fam);
      const gate = endpointSetName(fam.family);
      const gateOf = m?.get(gate);
      if (!m || !gateOf || fam.sets.some((s) => m.get(s.name) === undefined)) return this.forget();
      const sets: [string, (ep: Endpoint) => string[]][] = [];
      for (const s of fam.sets) {
        const of = m.get(s.name);
        if (of && s.name !== gate) sets.push([s.name, of]);
      }
      families.push({ gate, of: gateOf, sets });
    }
    const input = toInput(resources);
    const res = new Resolver(input);
    const texts = new Map(stored.map((s) => [s.key, s.value]));
    const endpoints = new Map<string, Endpoint>();
    for (const r of resources) if (r.kind === 'Endpoint') endpoints.set(resourceKey(r), r.value);
    const addrs = new Map<string, number>();
    for (const e of endpoints.values()) for (const a of addrsOf(e)) bump(addrs, a, 1);
    let tenants: Map<string, number> | undefined;
    if (input.settings.tenantIsolation) {
      tenants = new Map();
      for (const e of endpoints.values()) if (res.tenantOf(e)) bump(tenants, res.tenantOf(e), 1);
    }
    this.last = { texts, endpoints, families, types, res, addrs, tenants, declaredTenants: new Set(input.tenants.map((t) => t.name)), scopes: input.policies.map(policyScope), tenantIsolation: input.settings.tenantIsolation };
  }

  forget(): void {
    this.last = undefined;
  }

  /**
   * The member changes that bring the kernel from the remembered state to
   * `stored`, or undefined when only a full compile can (no remembered
   * state, anything but an endpoint changed, a shared address, a tenant's
   * rules appearing or going). Only changed records are parsed.
   */
  plan(stored: StoredText[]): IncrementalPlan | undefined {
    const last = this.last;
    if (!last) return undefined;
    const changes = new Map<string, string | undefined>();
    for (const { key, value } of stored) if (last.texts.get(key) !== value) changes.set(key, value);
    if (stored.length - changes.size < last.texts.size) {
      const seen = new Set(stored.map((s) => s.key));
      for (const key of last.texts.keys()) if (!seen.has(key)) changes.set(key, undefined);
    }
    return this.planChanges(changes);
  }

  /**
   * As `plan`, given only the records that may have changed since the
   * remembered state (key -> text now, undefined: gone), e.g. from watch
   * events; one equal to what is remembered counts as unchanged.
   */
  planChanges(changes: Map<string, string | undefined>): IncrementalPlan | undefined {
    const last = this.last;
    if (!last) return undefined;
    const updates: IncrementalPlan['updates'] = new Map();
    for (const [key, value] of changes) {
      const was = last.texts.get(key);
      if (was === value) continue;
      if (value === undefined) {
        if (!last.endpoints.has(key)) return undefined; // a policy, tier, tenant, namespace or setting went
        updates.set(key, undefined);
        continue;
      }
      if (!key.startsWith(ENDPOINT_KEY)) return undefined;
      const r = JSON.parse(value) as Resource;
      if (r.kind !== 'Endpoint') return undefined;
      updates.set(key, { value, ep: r.value });
    }
    const gone: Endpoint[] = [];
    const come: Endpoint[] = [];
    let joined = 0;
    let left = 0;
    let changed = 0;
    for (const [key, u] of updates) {
      const old = last.endpoints.get(key);
      if (old) gone.push(old);
      if (u) come.push(u.ep);
      if (old && u) changed++;
      else if (u) joined++;
      else left++;
    }
    if (!updates.size) return { lines: [], ops: [], joined, left, changed, updates };
    // A local endpoint that a policy selects, or that has a tenant, has chains of its own (tern-tw-/tern-fw-<veth>
    // and a dispatch leaf): only a full compile writes them. One that has none falls out of the dispatch unmatched,
    // so only its set members change, unless its interface is shared (the leaf then lists each record).
    for (const e of [...gone, ...come]) {
      if (!this.isLocal(e)) continue;
      if (last.scopes.some((sc) => last.res.scopeSelects(sc, e))) return undefined;
      if (last.tenantIsolation && last.res.tenantOf(e)) return undefined;
    }
    for (const [key, u] of updates) {
      if (!u || !this.isLocal(u.ep)) continue;
      for (const [k, other] of last.endpoints) if (k !== key && other.hostIface === u.ep.hostIface && this.isLocal(other)) return undefined;
    }
    // Sets hold addresses, not endpoints: an address two endpoints share (before or after) is the compiler's to sort out.
    const delta = new Map<string, number>();
    for (const e of gone) for (const a of addrsOf(e)) bump(delta, a, -1);
    for (const e of come) for (const a of addrsOf(e)) bump(delta, a, 1);
    for (const e of [...gone, ...come]) {
      for (const a of addrsOf(e)) {
        const before = last.addrs.get(a) ?? 0;
        if (before > 1 || before + (delta.get(a) ?? 0) > 1) return undefined;
      }
    }
    if (last.tenants) {
      // The isolation rules list every tenant with an endpoint or a declaration: one appearing or going changes a chain.
      const tdelta = new Map<string, number>();
      for (const e of gone) if (last.res.tenantOf(e)) bump(tdelta, last.res.tenantOf(e), -1);
      for (const e of come) if (last.res.tenantOf(e)) bump(tdelta, last.res.tenantOf(e), 1);
      for (const [t, d] of tdelta) {
        if (last.declaredTenants.has(t)) continue;
        const before = last.tenants.get(t) ?? 0;
        if (before === 0 || before + d === 0) return undefined;
      }
    }
    const close: string[] = [];
    const delMembers: string[] = [];
    const addMembers: string[] = [];
    const open: string[] = [];
    for (const f of last.families) {
      for (const e of gone) {
        for (const m of f.of(e)) close.push(`del ${f.gate} ${m}`);
        for (const [name, of] of f.sets) for (const m of of(e)) delMembers.push(`del ${name} ${m}`);
      }
      for (const e of come) {
        for (const [name, of] of f.sets) for (const m of of(e)) addMembers.push(`add ${name} ${m}`);
        for (const m of f.of(e)) open.push(`add ${f.gate} ${m}`);
      }
    }
    const lines = [...close, ...delMembers, ...addMembers, ...open];
    const ops = lines.map((l): MemberOp => {
      const [op, set, member] = l.split(' ');
      return { op: op as MemberOp['op'], set, member, type: last.types.get(set)! };
    });
    return { lines, ops, joined, left, changed, updates };
  }

  /** The plan's changes are in the kernel: the remembered state follows. */
  commit(plan: IncrementalPlan): void {
    const last = this.last;
    if (!last) return;
    for (const [key, u] of plan.updates) {
      const old = last.endpoints.get(key);
      for (const [e, d] of [
        [old, -1],
        [u?.ep, 1],
      ] as const) {
        if (!e) continue;
        for (const a of addrsOf(e)) bump(last.addrs, a, d);
        const t = last.tenants && last.res.tenantOf(e);
        if (t) bump(last.tenants!, t, d);
      }
      if (u) {
        last.texts.set(key, u.value);
        last.endpoints.set(key, u.ep);
      } else {
        last.texts.delete(key);
        last.endpoints.delete(key);
      }
    }
  }
}

function addrsOf(e: Endpoint): string[] {
  return e.ips.map(addrOnly);
}
