/**
 * Policy files: YAML or JSON, several documents per file. Every document is
 * validated strictly (unknown fields are errors) and normalised into the model.
 * Any problem rejects the whole input with file, line and field.
 */
import * as net from 'node:net';
import { LineCounter, parseAllDocuments, isNode, type Document } from 'yaml';
import { PolicyFileError, type FileProblem } from './errors';
import {
  DEFAULT_TIER,
  Proto,
  type Action,
  type Endpoint,
  type EntityMatch,
  type NamedPort,
  type Namespace,
  type Origin,
  type Policy,
  type PortSpec,
  type Rule,
  type Settings,
  type Tenant,
  type Tier,
} from './model';
import { ALL, fromLabelSelector, parseSelector, SelectorSyntaxError, type LabelSelector, type Selector } from './selector';

export type Resource =
  | { kind: 'Policy'; key: string; value: Policy }
  | { kind: 'Tier'; key: string; value: Tier }
  | { kind: 'Tenant'; key: string; value: Tenant }
  | { kind: 'Namespace'; key: string; value: Namespace }
  | { kind: 'Endpoint'; key: string; value: Endpoint }
  | { kind: 'Settings'; key: string; value: Settings };

type Path = (string | number)[];

class FieldError extends Error {
  constructor(
    readonly path: Path,
    message: string,
  ) {
    super(message);
  }
}

export function formatPath(path: Path): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${p}` : p;
  return s || '(document)';
}

const TERN_API = new Set(['tern.io/v1', 'projectcalico.org/v3']);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Field readers: each throws a FieldError carrying the path it was reading. */
class Reader {
  obj(v: unknown, path: Path, allowed: readonly string[]): Obj {
    if (!isObj(v)) throw new FieldError(path, 'expected a mapping');
    for (const k of Object.keys(v)) if (!allowed.includes(k)) throw new FieldError([...path, k], 'unknown field');
    return v;
  }
  str(v: unknown, path: Path): string {
    if (typeof v !== 'string') throw new FieldError(path, 'expected a string');
    return v;
  }
  optStr(v: unknown, path: Path): string | undefined {
    return v === undefined || v === null ? undefined : this.str(v, path);
  }
  num(v: unknown, path: Path, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new FieldError(path, `expected an integer in [${min}, ${max}]`);
    return v;
  }
  arr(v: unknown, path: Path): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new FieldError(path, 'expected a list');
    return v;
  }
  labels(v: unknown, path: Path): Record<string, string> {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) throw new FieldError(path, 'expected a mapping of labels');
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) {
      if (!/^[A-Za-z0-9_][A-Za-z0-9_./-]*$/.test(k)) throw new FieldError([...path, k], 'invalid label key');
      if (typeof val !== 'string') throw new FieldError([...path, k], 'label value must be a string');
      out[k] = val;
    }
    return out;
  }
  selector(v: unknown, path: Path): Selector {
    const s = this.str(v, path);
    try {
      return parseSelector(s);
    } catch (e) {
      if (e instanceof SelectorSyntaxError) throw new FieldError(path, e.message);
      throw e;
    }
  }
  labelSelector(v: unknown, path: Path): Selector {
    const o = this.obj(v ?? {}, path, ['matchLabels', 'matchExpressions']);
    const ml = this.labels(o.matchLabels, [...path, 'matchLabels']);
    const exprs = this.arr(o.matchExpressions, [...path, 'matchExpressions']).map((e, i) => {
      const p = [...path, 'matchExpressions', i];
      const x = this.obj(e, p, ['key', 'operator', 'values']);
      const key = this.str(x.key, [...p, 'key']);
      const operator = this.str(x.operator, [...p, 'operator']);
      if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(operator)) throw new FieldError([...p, 'operator'], `unknown operator ${operator}`);
      const values = this.arr(x.values, [...p, 'values']).map((s, j) => this.str(s, [...p, 'values', j]));
      if ((operator === 'In' || operator === 'NotIn') && values.length === 0) throw new FieldError([...p, 'values'], `${operator} needs values`);
      if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0) throw new FieldError([...p, 'values'], `${operator} takes no values`);
      return { key, operator, values } as NonNullable<LabelSelector['matchExpressions']>[number];
    });
    return fromLabelSelector({ matchLabels: ml, matchExpressions: exprs });
  }
  cidr(v: unknown, path: Path): string {
    const s = this.str(v, path);
    const [addr, len, extra] = s.split('/');
    const fam = net.isIP(addr);
    if (extra !== undefined || fam === 0) throw new FieldError(path, `invalid CIDR ${JSON.stringify(s)}`);
    const max = fam === 4 ? 32 : 128;
    const n = len === undefined ? max : /^\d+$/.test(len) ? Number(len) : NaN;
    if (!(n >= 0 && n <= max)) throw new FieldError(path, `invalid prefix length in ${JSON.stringify(s)}`);
    return `${addr}/${n}`;
  }
  protocol(v: unknown, path: Path): number {
    if (typeof v === 'number') return this.num(v, path, 0, 255);
    const s = this.str(v, path);
    const named: Record<string, number> = { TCP: Proto.TCP, UDP: Proto.UDP, ICMP: Proto.ICMP, ICMPV6: Proto.ICMPV6, SCTP: Proto.SCTP, UDPLITE: 136 };
    const n = named[s.toUpperCase()];
    if (n !== undefined) return n;
    if (/^\d+$/.test(s)) return this.num(Number(s), path, 0, 255);
    throw new FieldError(path, `unknown protocol ${JSON.stringify(s)}`);
  }
  /** Calico port: 80, "80", "80:90", or a port name. */
  calicoPort(v: unknown, path: Path): PortSpec {
    if (typeof v === 'number') {
      const p = this.num(v, path, 0, 65535);
      return { first: p, last: p };
    }
    const s = this.str(v, path);
    const m = /^(\d+)(?::(\d+))?$/.exec(s);
    if (m) {
      const first = this.num(Number(m[1]), path, 0, 65535);
      const last = m[2] === undefined ? first : this.num(Number(m[2]), path, 0, 65535);
      if (last < first) throw new FieldError(path, 'port range end before start');
      return { first, last };
    }
    if (!PORT_NAME.test(s) || s.length > 15) throw new FieldError(path, `invalid port ${JSON.stringify(s)}`);
    return { name: s };
  }
}

const R = new Reader();

function meta(v: unknown, path: Path, namespaced: boolean): { name: string; namespace?: string; labels: Record<string, string> } {
  const m = R.obj(v, path, ['name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'creationTimestamp', 'generation']);
  const name = R.str(m.name, [...path, 'name']);
  if (!DNS_SUBDOMAIN.test(name) || name.length > 253) throw new FieldError([...path, 'name'], `invalid name ${JSON.stringify(name)}`);
  let namespace: string | undefined;
  if (namespaced) {
    namespace = R.optStr(m.namespace, [...path, 'namespace']) ?? 'default';
    if (!DNS_LABEL.test(namespace)) throw new FieldError([...path, 'namespace'], `invalid namespace ${JSON.stringify(namespace)}`);
  } else if (m.namespace !== undefined) throw new FieldError([...path, 'namespace'], 'this kind is not namespaced');
  return { name, namespace, labels: R.labels(m.labels, [...path, 'labels']) };
}

// ---- Kubernetes networking.k8s.io/v1 NetworkPolicy -------------------------

function k8sPolicy(doc: Obj, origin: Origin): Policy {
  const md = meta(doc.metadata, ['metadata'], true);
  const spec = R.obj(doc.spec, ['spec'], ['podSelector', 'policyTypes', 'ingress', 'egress']);
  if (spec.podSelector === undefined) throw new FieldError(['spec', 'podSelector'], 'required');
  const selector = R.labelSelector(spec.podSelector, ['spec', 'podSelector']);
  const ingressRaw = R.arr(spec.ingress, ['spec', 'ingress']);
  const egressRaw = R.arr(spec.egress, ['spec', 'egress']);
  let types: Policy['types'];
  if (spec.policyTypes === undefined) {
    // Defaulting as in the API server: Ingress always, Egress only with egress rules.
    types = { ingress: true, egress: egressRaw.length > 0 };
  } else {
    const t = R.arr(spec.policyTypes, ['spec', 'policyTypes']).map((x, i) => R.str(x, ['spec', 'policyTypes', i]));
    t.forEach((x, i) => {
      if (x !== 'Ingress' && x !== 'Egress') throw new FieldError(['spec', 'policyTypes', i], `unknown policy type ${x}`);
    });
    types = { ingress: t.includes('Ingress'), egress: t.includes('Egress') };
  }
  const ns = md.namespace!;
  const rules = (raw: unknown[], dir: 'ingress' | 'egress'): Rule[] => {
    const peersKey = dir === 'ingress' ? 'from' : 'to';
    const out: Rule[] = [];
    raw.forEach((r, i) => {
      const p: Path = ['spec', dir, i];
      const o = R.obj(r ?? {}, p, [peersKey, 'ports']);
      const listed = o[peersKey] === undefined ? [] : R.arr(o[peersKey], [...p, peersKey]).map((peer, j) => k8sPeer(peer, [...p, peersKey, j], ns));
      // The API: an empty or missing list matches every source (destination).
      const peers: EntityMatch[] = listed.length ? listed : [{}];
      const ports = o.ports === undefined ? undefined : R.arr(o.ports, [...p, 'ports']).map((x, j) => k8sPort(x, [...p, 'ports', j]));
      // Ports pair with the peers of this rule only: one rule per (peer, protocol).
      const byProto = new Map<number, PortSpec[]>();
      for (const pt of ports ?? []) byProto.set(pt.protocol, [...(byProto.get(pt.protocol) ?? []), ...(pt.port ? [pt.port] : [])]);
      for (const peer of peers) {
        if (ports === undefined || ports.length === 0) {
          out.push({ action: 'Allow', source: dir === 'ingress' ? peer : {}, destination: dir === 'ingress' ? {} : peer });
          continue;
        }
        for (const [protocol, specs] of byProto) {
          // A port entry without a port means every port of that protocol.
          const anyPort = (ports ?? []).some((x) => x.protocol === protocol && !x.port);
          const dst: EntityMatch = anyPort ? {} : { ports: specs };
          out.push({
            action: 'Allow',
            protocol,
            source: dir === 'ingress' ? peer : {},
            destination: dir === 'ingress' ? dst : { ...peer, ...dst },
          });
        }
      }
    });
    return out;
  };
  return {
    kind: 'KubernetesNetworkPolicy',
    name: md.name,
    namespace: ns,
    tier: DEFAULT_TIER,
    order: 1000,
    selector,
    types,
    ingress: rules(ingressRaw, 'ingress'),
    egress: rules(egressRaw, 'egress'),
    origin,
  };
}

function k8sPeer(v: unknown, path: Path, ns: string): EntityMatch {
  const o = R.obj(v, path, ['podSelector', 'namespaceSelector', 'ipBlock']);
  if (o.ipBlock !== undefined) {
    if (o.podSelector !== undefined || o.namespaceSelector !== undefined) throw new FieldError([...path, 'ipBlock'], 'ipBlock cannot be combined with selectors');
    const b = R.obj(o.ipBlock, [...path, 'ipBlock'], ['cidr', 'except']);
    const cidr = R.cidr(b.cidr, [...path, 'ipBlock', 'cidr']);
    const except = R.arr(b.except, [...path, 'ipBlock', 'except']).map((x, i) => R.cidr(x, [...path, 'ipBlock', 'except', i]));
    return except.length ? { nets: [cidr], notNets: except } : { nets: [cidr] };
  }
  if (o.podSelector === undefined && o.namespaceSelector === undefined) throw new FieldError(path, 'a peer needs podSelector, namespaceSelector or ipBlock');
  const selector = o.podSelector === undefined ? ALL : R.labelSelector(o.podSelector, [...path, 'podSelector']);
  if (o.namespaceSelector === undefined) return { selector, namespace: ns };
  // podSelector AND namespaceSelector within one peer.
  return { selector, namespaceSelector: R.labelSelector(o.namespaceSelector, [...path, 'namespaceSelector']) };
}

function k8sPort(v: unknown, path: Path): { protocol: number; port?: PortSpec } {
  const o = R.obj(v, path, ['protocol', 'port', 'endPort']);
  const protoName = R.optStr(o.protocol, [...path, 'protocol']) ?? 'TCP';
  const protocol = ({ TCP: Proto.TCP, UDP: Proto.UDP, SCTP: Proto.SCTP } as Record<string, number>)[protoName];
  if (protocol === undefined) throw new FieldError([...path, 'protocol'], `protocol must be TCP, UDP or SCTP, not ${protoName}`);
  if (o.port === undefined) {
    if (o.endPort !== undefined) throw new FieldError([...path, 'endPort'], 'endPort needs port');
    return { protocol };
  }
  if (typeof o.port === 'string' && !/^\d+$/.test(o.port)) {
    if (!PORT_NAME.test(o.port) || o.port.length > 15) throw new FieldError([...path, 'port'], `invalid port name ${JSON.stringify(o.port)}`);
    if (o.endPort !== undefined) throw new FieldError([...path, 'endPort'], 'endPort needs a numeric port');
    return { protocol, port: { name: o.port } };
  }
  const first = R.num(typeof o.port === 'string' ? Number(o.port) : o.port, [...path, 'port'], 1, 65535);
  const last = o.endPort === undefined ? first : R.num(o.endPort, [...path, 'endPort'], 1, 65535);
  if (last < first) throw new FieldError([...path, 'endPort'], 'endPort must not be below port');
  return { protocol, port: { first, last } };
}

// ---- Tern / Calico v3 ------------------------------------------------------

const ACTIONS: readonly Action[] = ['Allow', 'Deny', 'Pass', 'Log'];

function icmp(v: unknown, path: Path): { type: number; code?: number } {
  const o = R.obj(v, path, ['type', 'code']);
  const type = R.num(o.type, [...path, 'type'], 0, 254);
  const code = o.code === undefined ? undefined : R.num(o.code, [...path, 'code'], 0, 255);
  return code === undefined ? { type } : { type, code };
}

function entity(v: unknown, path: Path, ns: string | undefined): EntityMatch {
  const o = R.obj(v ?? {}, path, ['nets', 'notNets', 'selector', 'notSelector', 'namespaceSelector', 'ports', 'notPorts']);
  const e: EntityMatch = {};
  if (o.nets !== undefined) e.nets = R.arr(o.nets, [...path, 'nets']).map((x, i) => R.cidr(x, [...path, 'nets', i]));
  if (o.notNets !== undefined) e.notNets = R.arr(o.notNets, [...path, 'notNets']).map((x, i) => R.cidr(x, [...path, 'notNets', i]));
  if (o.ports !== undefined) e.ports = R.arr(o.ports, [...path, 'ports']).map((x, i) => R.calicoPort(x, [...path, 'ports', i]));
  if (o.notPorts !== undefined) e.notPorts = R.arr(o.notPorts, [...path, 'notPorts']).map((x, i) => R.calicoPort(x, [...path, 'notPorts', i]));
  const sel = o.selector === undefined ? undefined : R.selector(o.selector, [...path, 'selector']);
  const notSel = o.notSelector === undefined ? undefined : R.selector(o.notSelector, [...path, 'notSelector']);
  const nsSel = o.namespaceSelector === undefined ? undefined : R.selector(o.namespaceSelector, [...path, 'namespaceSelector']);
  if (nsSel) e.namespaceSelector = nsSel;
  if (sel || nsSel) e.selector = sel ?? ALL;
  if (notSel) e.notSelector = notSel;
  // In a namespaced policy a bare selector means "in this namespace" (Calico semantics).
  if ((sel || notSel) && !nsSel && ns) e.namespace = ns;
  return e;
}

function ternRule(v: unknown, path: Path, ns: string | undefined): Rule {
  const o = R.obj(v, path, ['action', 'protocol', 'notProtocol', 'icmp', 'notICMP', 'ipVersion', 'source', 'destination', 'metadata']);
  const action = R.str(o.action, [...path, 'action']) as Action;
  if (!ACTIONS.includes(action)) throw new FieldError([...path, 'action'], `action must be one of ${ACTIONS.join(', ')}`);
  const r: Rule = { action, source: entity(o.source, [...path, 'source'], ns), destination: entity(o.destination, [...path, 'destination'], ns) };
  if (o.protocol !== undefined) r.protocol = R.protocol(o.protocol, [...path, 'protocol']);
  if (o.notProtocol !== undefined) r.notProtocol = R.protocol(o.notProtocol, [...path, 'notProtocol']);
  if (o.ipVersion !== undefined) {
    const v4or6 = R.num(o.ipVersion, [...path, 'ipVersion'], 4, 6);
    if (v4or6 === 5) throw new FieldError([...path, 'ipVersion'], 'ipVersion must be 4 or 6');
    r.ipVersion = v4or6 as 4 | 6;
  }
  if (o.icmp !== undefined || o.notICMP !== undefined) {
    const field = o.icmp !== undefined ? 'icmp' : 'notICMP';
    if (r.protocol !== Proto.ICMP && r.protocol !== Proto.ICMPV6) throw new FieldError([...path, field], 'icmp needs protocol ICMP or ICMPv6');
    if (o.icmp !== undefined) r.icmp = icmp(o.icmp, [...path, 'icmp']);
    if (o.notICMP !== undefined) r.notICMP = icmp(o.notICMP, [...path, 'notICMP']);
  }
  if (r.protocol === Proto.ICMP && r.ipVersion === 6) throw new FieldError([...path, 'ipVersion'], 'ICMP is IPv4 only');
  if (r.protocol === Proto.ICMPV6 && r.ipVersion === 4) throw new FieldError([...path, 'ipVersion'], 'ICMPv6 is IPv6 only');
  for (const side of ['source', 'destination'] as const) {
    const e = r[side];
    for (const f of ['ports', 'notPorts'] as const) {
      if (e[f] && ![Proto.TCP, Proto.UDP, Proto.SCTP].includes(r.protocol as 6)) throw new FieldError([...path, side, f], 'ports need protocol TCP, UDP or SCTP');
    }
    if (side === 'source' && [...(e.ports ?? []), ...(e.notPorts ?? [])].some((p) => 'name' in p)) throw new FieldError([...path, side, 'ports'], 'named ports are only allowed in destination');
  }
  return r;
}

/** Calico's default: [Egress] for a policy with only egress rules, [Ingress] with none, else both. */
function types(v: unknown, path: Path, rules: { ingress: number; egress: number }): Policy['types'] {
  if (v === undefined) return { ingress: rules.ingress > 0 || rules.egress === 0, egress: rules.egress > 0 };
  const t = R.arr(v, path).map((x, i) => R.str(x, [...path, i]));
  t.forEach((x, i) => {
    if (x !== 'Ingress' && x !== 'Egress') throw new FieldError([...path, i], `unknown type ${x}`);
  });
  return { ingress: t.includes('Ingress'), egress: t.includes('Egress') };
}

function ternPolicy(doc: Obj, origin: Origin, global: boolean): Policy {
  const md = meta(doc.metadata, ['metadata'], !global);
  const keys = ['order', 'tier', 'selector', 'types', 'ingress', 'egress', 'doNotTrack', 'preDNAT', 'applyOnForward', 'serviceAccountSelector', 'namespaceSelector', 'performanceHints'];
  const spec = R.obj(doc.spec ?? {}, ['spec'], global ? keys : keys.filter((k) => !['doNotTrack', 'preDNAT', 'applyOnForward', 'namespaceSelector'].includes(k)));
  for (const unsupported of ['doNotTrack', 'preDNAT', 'serviceAccountSelector']) {
    if (spec[unsupported]) throw new FieldError(['spec', unsupported], 'not supported by Tern');
  }
  const ns = md.namespace;
  const ingress = R.arr(spec.ingress, ['spec', 'ingress']).map((r, i) => ternRule(r, ['spec', 'ingress', i], ns));
  const egress = R.arr(spec.egress, ['spec', 'egress']).map((r, i) => ternRule(r, ['spec', 'egress', i], ns));
  const tier = R.optStr(spec.tier, ['spec', 'tier']) ?? DEFAULT_TIER;
  if (spec.order !== undefined && (typeof spec.order !== 'number' || !Number.isFinite(spec.order))) throw new FieldError(['spec', 'order'], 'expected a number');
  const p: Policy = {
    kind: global ? 'GlobalNetworkPolicy' : 'NetworkPolicy',
    name: md.name,
    namespace: ns,
    tier,
    order: spec.order as number | undefined,
    selector: spec.selector === undefined ? ALL : R.selector(spec.selector, ['spec', 'selector']),
    types: types(spec.types, ['spec', 'types'], { ingress: ingress.length, egress: egress.length }),
    ingress,
    egress,
    origin,
  };
  if (global && spec.namespaceSelector !== undefined) p.namespaceSelector = R.selector(spec.namespaceSelector, ['spec', 'namespaceSelector']);
  return p;
}

function tier(doc: Obj, origin: Origin): Tier {
  const md = meta(doc.metadata, ['metadata'], false);
  const spec = R.obj(doc.spec ?? {}, ['spec'], ['order', 'defaultAction']);
  if (spec.order !== undefined && (typeof spec.order !== 'number' || !Number.isFinite(spec.order))) throw new FieldError(['spec', 'order'], 'expected a number');
  const da = R.optStr(spec.defaultAction, ['spec', 'defaultAction']) ?? 'Deny';
  if (da !== 'Deny' && da !== 'Pass') throw new FieldError(['spec', 'defaultAction'], 'defaultAction must be Deny or Pass');
  return { name: md.name, order: spec.order as number | undefined, defaultAction: da, origin };
}

function tenant(doc: Obj, origin: Origin): Tenant {
  const md = meta(doc.metadata, ['metadata'], false);
  const spec = R.obj(doc.spec ?? {}, ['spec'], ['namespaces']);
  const namespaces = R.arr(spec.namespaces, ['spec', 'namespaces']).map((x, i) => R.str(x, ['spec', 'namespaces', i]));
  return { name: md.name, namespaces, origin };
}

function settings(doc: Obj): Settings {
  const md = meta(doc.metadata, ['metadata'], false);
  if (md.name !== 'default') throw new FieldError(['metadata', 'name'], 'ClusterSettings must be named "default"');
  const spec = R.obj(doc.spec ?? {}, ['spec'], ['tenantIsolation', 'tenantLabel']);
  if (spec.tenantIsolation !== undefined && typeof spec.tenantIsolation !== 'boolean') throw new FieldError(['spec', 'tenantIsolation'], 'expected true or false');
  return { tenantIsolation: spec.tenantIsolation === true, tenantLabel: R.optStr(spec.tenantLabel, ['spec', 'tenantLabel']) ?? 'tern.io/tenant' };
}

function namespaceRes(doc: Obj, origin: Origin): Namespace {
  const md = meta(doc.metadata, ['metadata'], false);
  if (!DNS_LABEL.test(md.name)) throw new FieldError(['metadata', 'name'], `invalid namespace name ${JSON.stringify(md.name)}`);
  if (doc.spec !== undefined) R.obj(doc.spec, ['spec'], ['finalizers']);
  return { name: md.name, labels: md.labels, origin };
}

function workloadEndpoint(doc: Obj): Endpoint {
  const md = meta(doc.metadata, ['metadata'], true);
  const spec = R.obj(doc.spec, ['spec'], ['orchestrator', 'workload', 'node', 'containerID', 'pod', 'endpoint', 'interfaceName', 'ipNetworks', 'ports', 'profiles', 'mac', 'serviceAccountName', 'tenant']);
  const hostIface = R.str(spec.interfaceName, ['spec', 'interfaceName']);
  const ips = R.arr(spec.ipNetworks, ['spec', 'ipNetworks']).map((x, i) => R.cidr(x, ['spec', 'ipNetworks', i]).split('/')[0]);
  const namedPorts: NamedPort[] = R.arr(spec.ports, ['spec', 'ports']).map((x, i) => {
    const p: Path = ['spec', 'ports', i];
    const o = R.obj(x, p, ['name', 'protocol', 'port', 'hostPort', 'hostIP']);
    const name = R.str(o.name, [...p, 'name']);
    if (!PORT_NAME.test(name)) throw new FieldError([...p, 'name'], `invalid port name ${JSON.stringify(name)}`);
    return { name, protocol: R.protocol(o.protocol ?? 'TCP', [...p, 'protocol']), port: R.num(o.port, [...p, 'port'], 1, 65535) };
  });
  const ep: Endpoint = { name: R.optStr(spec.pod, ['spec', 'pod']) ?? md.name, namespace: md.namespace!, labels: md.labels, ips, hostIface, namedPorts };
  const t = R.optStr(spec.tenant, ['spec', 'tenant']);
  if (t) ep.tenant = t;
  const node = R.optStr(spec.node, ['spec', 'node']);
  if (node) ep.node = node;
  return ep;
}

function parseDoc(doc: Obj, origin: Origin): Resource {
  const apiVersion = R.str(doc.apiVersion, ['apiVersion']);
  const kind = R.str(doc.kind, ['kind']);
  const top = (allowed: string[]) => R.obj(doc, [], ['apiVersion', 'kind', ...allowed]);
  if (apiVersion === 'networking.k8s.io/v1' && kind === 'NetworkPolicy') {
    top(['metadata', 'spec', 'status']);
    const p = k8sPolicy(doc, origin);
    return { kind: 'Policy', key: `KubernetesNetworkPolicy/${p.namespace}/${p.name}`, value: p };
  }
  if (apiVersion === 'v1' && kind === 'Namespace') {
    top(['metadata', 'spec', 'status']);
    const n = namespaceRes(doc, origin);
    return { kind: 'Namespace', key: n.name, value: n };
  }
  if (!TERN_API.has(apiVersion)) throw new FieldError(['apiVersion'], `unsupported apiVersion ${JSON.stringify(apiVersion)} for kind ${kind}`);
  top(['metadata', 'spec']);
  switch (kind) {
    case 'NetworkPolicy': {
      const p = ternPolicy(doc, origin, false);
      return { kind: 'Policy', key: `NetworkPolicy/${p.namespace}/${p.name}`, value: p };
    }
    case 'GlobalNetworkPolicy': {
      const p = ternPolicy(doc, origin, true);
      return { kind: 'Policy', key: `GlobalNetworkPolicy/${p.name}`, value: p };
    }
    case 'Tier': {
      const t = tier(doc, origin);
      return { kind: 'Tier', key: t.name, value: t };
    }
    case 'Tenant': {
      const t = tenant(doc, origin);
      return { kind: 'Tenant', key: t.name, value: t };
    }
    case 'ClusterSettings':
      return { kind: 'Settings', key: 'default', value: settings(doc) };
    case 'WorkloadEndpoint': {
      const e = workloadEndpoint(doc);
      return { kind: 'Endpoint', key: `${e.namespace}/${e.name}`, value: e };
    }
    default:
      throw new FieldError(['kind'], `unknown kind ${JSON.stringify(kind)}`);
  }
}

/** Line (1-based) of the key or item at `path`, or of its nearest existing ancestor. */
function lineOf(doc: Document, lc: LineCounter, path: Path): number {
  type Item = { key?: { value?: unknown; range?: [number, number, number] }; range?: [number, number, number] };
  for (let n = path.length; n >= 1; n--) {
    const parent = n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true);
    if (!isNode(parent) || !('items' in parent)) continue;
    const items = (parent as unknown as { items: Item[] }).items;
    const seg = path[n - 1];
    if (typeof seg === 'number') {
      const it = items[seg];
      if (it?.range) return lc.linePos(it.range[0]).line;
    } else {
      const pair = items.find((it) => it.key?.value === seg);
      if (pair?.key?.range) return lc.linePos(pair.key.range[0]).line;
    }
  }
  return doc.contents?.range ? lc.linePos(doc.contents.range[0]).line : 1;
}

/** Parse one file's text. Throws PolicyFileError listing every problem found. */
export function parsePolicyText(text: string, file: string): Resource[] {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const problems: FileProblem[] = [];
  const out: Resource[] = [];
  if (!Array.isArray(docs)) {
    // An empty stream (e.g. only comments) holds no resources.
    return [];
  }
  for (const doc of docs) {
    if (doc.errors.length) {
      for (const e of doc.errors) problems.push({ file, line: lc.linePos(e.pos[0]).line, field: '(syntax)', message: e.message.split('\n')[0] });
      continue;
    }
    const js: unknown = doc.toJS({ maxAliasCount: 100 });
    if (js === null || js === undefined) continue; // empty document between separators
    const line = doc.contents?.range ? lc.linePos(doc.contents.range[0]).line : 1;
    // JSON files may hold a Kubernetes-style List.
    const items: { v: unknown; path: Path }[] =
      isObj(js) && (js.kind === 'List' || js.kind?.toString().endsWith('List')) && Array.isArray(js.items) ? js.items.map((v, i) => ({ v, path: ['items', i] })) : [{ v: js, path: [] }];
    for (const { v, path } of items) {
      try {
        if (!isObj(v)) throw new FieldError([], 'a document must be a mapping');
        const itemLine = path.length ? lineOf(doc, lc, path) : line;
        out.push(parseDoc(v, { file, line: itemLine }));
      } catch (e) {
        if (!(e instanceof FieldError)) throw e;
        const full = [...path, ...e.path];
        problems.push({ file, line: lineOf(doc, lc, full), field: formatPath(full), message: e.message });
      }
    }
  }
  const seen = new Map<string, Resource>();
  for (const r of out) {
    const k = `${r.kind}/${r.key}`;
    const prev = seen.get(k);
    const origin = 'origin' in r.value ? (r.value as { origin?: Origin }).origin : undefined;
    if (prev) problems.push({ file, line: origin?.line ?? 1, field: 'metadata.name', message: `duplicate ${r.kind} ${r.key}` });
    seen.set(k, r);
  }
  if (problems.length) throw new PolicyFileError(problems);
  return out;
}
