/**
 * Stored objects as the documents `ternctl get -o yaml` prints and `ternctl
 * apply -f` reads back (pure): IPPool and Node here, the ACL kinds through
 * the policy parser, BGPPeer and BGPConfiguration through the BGP one. Reading a file never writes anything; every problem is
 * reported with file, line and field, and rejects the whole input.
 */
import { LineCounter, parseAllDocuments, isNode, type Document } from 'yaml';
import { PolicyFileError, type FileProblem } from '../acl/errors';
import { parsePolicyText, type Resource } from '../acl/parse';
import { formatSelector } from '../acl/selector';
import type { StoredResource } from '../acl/store';
import { cidrName, normalisePool, type IPPool } from '../ipam/model';
import type { NodeRecord } from '../node-daemon/registry';
import { parseBgpResources, type BgpResource } from '../node-daemon/bgp-resources';
import { messageOf } from '../lib/errors';

export const API = 'tern.io/v1';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

/** An ACL resource with the document it came from, so `get -o yaml` gives back what was applied. */
export type Documented = Resource & { manifest?: Record<string, unknown> };

/** What a file asks to store, by owner. */
export interface Objects {
  acl: Documented[];
  pools: IPPool[];
  nodes: Pick<NodeRecord, 'name' | 'addresses' | 'asn' | 'labels'>[];
  bgp: BgpResource[];
}

export const noObjects = (): Objects => ({ acl: [], pools: [], nodes: [], bgp: [] });

/** The kinds the BGP parser owns. */
export const BGP_KINDS = ['BGPPeer', 'BGPConfiguration'];

const PROTO_NAME: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };

export function poolManifest(p: IPPool): Manifest {
  const spec: Record<string, unknown> = { cidr: p.cidr, blockSize: p.blockSize, mode: p.mode, disabled: p.disabled, nodeSelector: p.nodeSelector, reserved: p.reserved };
  for (const k of ['namespaces', 'tenants', 'communities', 'vlan'] as const) if (p[k] !== undefined) spec[k] = p[k];
  return { apiVersion: API, kind: 'IPPool', metadata: { name: cidrName(p.cidr) }, spec };
}

export function nodeManifest(n: NodeRecord): Manifest {
  const spec: Record<string, unknown> = { addresses: n.addresses };
  if (n.asn !== undefined) spec.asn = n.asn;
  const status: Record<string, unknown> = { updated: n.updated };
  if (n.vtep) status.vtep = n.vtep;
  return { apiVersion: API, kind: 'Node', metadata: { name: n.name, labels: n.labels }, spec, status };
}

/** A BGP resource is stored flat ({kind, name, ...spec}); its document puts the spec back under spec. */
export function bgpManifest(r: BgpResource): Manifest {
  const { kind, name, ...spec } = r;
  return { apiVersion: API, kind, metadata: { name }, spec };
}

export function bgpResourceOf(m: Manifest): BgpResource {
  return { kind: m.kind, name: m.metadata.name, ...m.spec } as BgpResource;
}

/** An ACL resource as its document: the one it was applied from, else rebuilt from the model. */
export function aclManifest(r: StoredResource & Documented): Manifest {
  if (r.manifest) return r.manifest as unknown as Manifest;
  switch (r.kind) {
    case 'Tier':
      return { apiVersion: API, kind: 'Tier', metadata: { name: r.value.name }, spec: { ...(r.value.order !== undefined ? { order: r.value.order } : {}), defaultAction: r.value.defaultAction } };
    case 'Tenant':
      return { apiVersion: API, kind: 'Tenant', metadata: { name: r.value.name }, spec: { namespaces: r.value.namespaces } };
    case 'Settings':
      return { apiVersion: API, kind: 'ClusterSettings', metadata: { name: 'default' }, spec: { ...r.value } };
    case 'Namespace':
      return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: r.value.name, labels: r.value.labels } };
    case 'Endpoint': {
      const e = r.value;
      const spec: Record<string, unknown> = {
        pod: e.name,
        interfaceName: e.hostIface,
        ipNetworks: e.ips.map((ip) => (ip.includes('/') ? ip : `${ip}/${ip.includes(':') ? 128 : 32}`)),
        ports: e.namedPorts.map((p) => ({ name: p.name, protocol: PROTO_NAME[p.protocol] ?? p.protocol, port: p.port })),
      };
      if (e.tenant) spec.tenant = e.tenant;
      if (e.node) spec.node = e.node;
      return { apiVersion: API, kind: 'WorkloadEndpoint', metadata: { name: e.name, namespace: e.namespace, labels: e.labels }, spec };
    }
    case 'Policy': {
      // Stored before documents were kept: the rules live only in the compiled model.
      const p = r.value;
      const kind = p.kind === 'KubernetesNetworkPolicy' ? 'NetworkPolicy' : p.kind;
      return {
        apiVersion: p.kind === 'KubernetesNetworkPolicy' ? 'networking.k8s.io/v1' : API,
        kind,
        metadata: { name: p.name, ...(p.namespace ? { namespace: p.namespace } : {}), annotations: { 'tern.io/note': 'stored by an older ternctl: rules not shown, re-apply the source file' } },
        spec: { tier: p.tier, ...(p.order !== undefined ? { order: p.order } : {}), selector: formatSelector(p.selector) },
      };
    }
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class FieldProblem extends Error {
  constructor(
    readonly path: (string | number)[],
    message: string,
  ) {
    super(message);
  }
}

function lineAt(doc: Document, lc: LineCounter, path: (string | number)[]): number {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return 1;
}

function fields(o: Obj, path: (string | number)[], allowed: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new FieldProblem([...path, k], 'unknown field');
}

function poolFrom(m: Obj): IPPool {
  fields(m, [], ['apiVersion', 'kind', 'metadata', 'spec']);
  const md = isObj(m.metadata) ? m.metadata : {};
  const spec = m.spec;
  if (!isObj(spec)) throw new FieldProblem(['spec'], 'expected a mapping');
  fields(spec, ['spec'], ['cidr', 'blockSize', 'mode', 'disabled', 'nodeSelector', 'reserved', 'namespaces', 'tenants', 'communities', 'vlan']);
  if (typeof spec.cidr !== 'string') throw new FieldProblem(['spec', 'cidr'], 'expected a CIDR');
  let p: IPPool;
  try {
    p = normalisePool(spec as unknown as IPPool);
  } catch (e) {
    const field = /blockSize|reservation|mode|community|vlan\.\w+/.exec(messageOf(e))?.[0].replace('reservation', 'reserved').replace('community', 'communities');
    throw new FieldProblem(['spec', field ?? 'cidr'], messageOf(e));
  }
  if (md.name !== undefined && md.name !== cidrName(p.cidr)) throw new FieldProblem(['metadata', 'name'], `must be ${cidrName(p.cidr)} (the pool's CIDR), or left out`);
  return p;
}

function nodeFrom(m: Obj): Objects['nodes'][number] {
  fields(m, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const md = m.metadata;
  if (!isObj(md) || typeof md.name !== 'string' || !md.name) throw new FieldProblem(['metadata', 'name'], 'expected the node name');
  fields(md, ['metadata'], ['name', 'labels']);
  const labels = md.labels ?? {};
  if (!isObj(labels) || Object.values(labels).some((v) => typeof v !== 'string')) throw new FieldProblem(['metadata', 'labels'], 'expected a mapping of strings');
  const spec = isObj(m.spec) ? m.spec : {};
  fields(spec, ['spec'], ['addresses', 'asn']);
  const addresses = spec.addresses ?? [];
  if (!Array.isArray(addresses) || addresses.some((a) => typeof a !== 'string')) throw new FieldProblem(['spec', 'addresses'], 'expected a list of addresses');
  if (spec.asn !== undefined && (!Number.isInteger(spec.asn) || (spec.asn as number) < 1 || (spec.asn as number) > 4294967295)) throw new FieldProblem(['spec', 'asn'], 'expected an integer from 1 to 4294967295');
  return { name: md.name, addresses: addresses as string[], labels: labels as Record<string, string>, ...(spec.asn !== undefined ? { asn: spec.asn as number } : {}) };
}

/**
 * One file's objects. ACL and BGP documents go through their own parsers one
 * by one, each given at its own line and column so its problems name the
 * right line. With `only`, a document of any other kind is a problem.
 */
export function parseObjects(text: string, file: string, only?: string[]): Objects {
  const lc = new LineCounter();
  const out = noObjects();
  const problems: FileProblem[] = [];
  for (const doc of parseAllDocuments(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false }) as Document[]) {
    if (doc.errors.length) {
      for (const e of doc.errors) problems.push({ file, line: lc.linePos(e.pos[0]).line, field: '(syntax)', message: e.message.split('\n')[0] });
      continue;
    }
    const js: unknown = doc.toJS({ maxAliasCount: 100 });
    if (js === null || js === undefined) continue;
    const list = isObj(js) && typeof js.kind === 'string' && js.kind.endsWith('List') && Array.isArray(js.items);
    const items = list ? (js.items as unknown[]).map((v, i) => ({ v, path: ['items', i] as (string | number)[] })) : [{ v: js, path: [] as (string | number)[] }];
    for (const { v, path } of items) {
      try {
        const kind = isObj(v) ? v.kind : undefined;
        // The document's own text, at its own line and column, for the parsers that read text.
        const own = () => {
          const node = path.length ? doc.getIn(path, true) : doc.contents;
          const range = isNode(node) ? node.range : undefined;
          if (!range) throw new FieldProblem([], 'a document must be a mapping');
          const at = lc.linePos(range[0]);
          return '\n'.repeat(at.line - 1) + ' '.repeat(at.col - 1) + text.slice(range[0], range[1]);
        };
        if (only && !only.includes(String(kind))) throw new FieldProblem(['kind'], `must be ${only.join(' or ')}`);
        if (kind === 'IPPool') out.pools.push(poolFrom(v as Obj));
        else if (kind === 'Node') out.nodes.push(nodeFrom(v as Obj));
        else if (BGP_KINDS.includes(kind as string)) {
          // The BGP parser checks the spec; the document around it is checked here, as for the other kinds.
          fields(v as Obj, [], ['apiVersion', 'kind', 'metadata', 'spec']);
          if (isObj((v as Obj).metadata)) fields((v as Obj).metadata as Obj, ['metadata'], ['name']);
          out.bgp.push(...parseBgpResources(own(), file));
        } else {
          const [r] = parsePolicyText(own(), file);
          out.acl.push({ ...r, manifest: v as Record<string, unknown> });
        }
      } catch (e) {
        if (e instanceof PolicyFileError) problems.push(...e.problems);
        else if (e instanceof FieldProblem) problems.push({ file, line: lineAt(doc, lc, [...path, ...e.path]), field: [...path, ...e.path].map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[') || '(document)', message: e.message });
        else throw e;
      }
    }
  }
  if (problems.length) throw new PolicyFileError(problems);
  return out;
}
