/**
 * One resource model for every stored kind: `ternctl get KIND [NAME]`,
 * `ternctl apply -f FILE|-`, `ternctl delete KIND NAME | -f FILE`. The older
 * commands (`policy apply|delete`, `ipam pool set`, `node list|remove`,
 * `bgp apply|get|delete`) are thin aliases over the same functions.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { TernError } from '../lib/errors';
import type { Store, TxnOp } from '../datastore/types';
import { PolicyFileError, type FileProblem } from '../acl/errors';
import { policyFiles } from '../acl/load';
import { resourceKey, storedResources, type StoredResource } from '../acl/store';
import { formatSelector } from '../acl/selector';
import { loadIpamState, utilisation } from '../ipam/gc';
import { BLOCKS, cidrName, poolKey, type IPPool } from '../ipam/model';
import { validatePoolChange } from '../ipam/pool-change';
import { listNodes, nodeKey, type NodeRecord } from '../node-daemon/registry';
import { BGP_CONFIGS, BGP_PEERS, resourceKey as bgpKey, type BgpConfigResource, type BgpPeerResource, type BgpResource } from '../node-daemon/bgp-resources';
import { aclManifest, bgpManifest, noObjects, nodeManifest, parseObjects, poolManifest, type Documented, type Manifest, type Objects } from './manifests';
import { emit, example, fileError, formatOf, table, withStore } from './output';
import { argumentWords } from './completion';
import { endpointRow } from './endpoint';
import YAML from 'yaml';

interface Item {
  manifest: Manifest;
  /** The datastore key that holds it. */
  key: string;
  row: string[];
  wide?: string[];
}

interface KindDef {
  kind: string;
  aliases: string[];
  namespaced?: boolean;
  readOnly?: boolean;
  header: string[];
  wideHeader?: string[];
  list(store: Store): Promise<Item[]>;
}

export function nodeRow(n: NodeRecord): string[] {
  return [n.name, n.addresses.join(',') || '-', n.asn ? String(n.asn) : '-', Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-', n.updated];
}

const labels = (l: Record<string, string> | undefined) => Object.entries(l ?? {}).map(([k, v]) => `${k}=${v}`).join(',') || '-';

async function aclItems(store: Store, pick: (r: StoredResource) => boolean, row: (r: StoredResource) => string[]): Promise<Item[]> {
  return (await storedResources(store)).filter(pick).map((r) => ({ manifest: aclManifest(r), key: resourceKey(r), row: row(r), wide: [r.source ?? 'ternctl'] }));
}

async function bgpItems<R extends BgpResource>(store: Store, prefix: string, row: (r: R) => string[], wide: (r: R) => string[]): Promise<Item[]> {
  return (await store.list(prefix)).items.map((kv) => {
    const r = JSON.parse(kv.value) as R;
    return { manifest: bgpManifest(r), key: kv.key, row: row(r), wide: wide(r) };
  });
}

const policyRow = (r: StoredResource): string[] => {
  const p = r.value as Extract<StoredResource, { kind: 'Policy' }>['value'];
  return [...(p.namespace !== undefined ? [p.namespace] : []), p.name, p.tier, p.order === undefined ? '-' : String(p.order), formatSelector(p.selector)];
};

export const KINDS: KindDef[] = [
  {
    kind: 'IPPool',
    aliases: ['ippool', 'ippools', 'pool', 'pools'],
    header: ['NAME', 'CIDR', 'BLOCK', 'MODE', 'DISABLED', 'NODE SELECTOR'],
    wideHeader: ['BLOCKS', 'USED', 'RESERVED', 'NAMESPACES', 'TENANTS', 'COMMUNITIES'],
    async list(store) {
      const state = await loadIpamState(store);
      const u = utilisation(state);
      return [...state.pools.values()].map(({ pool: p }) => {
        const use = u.pools.find((x) => x.pool === p.cidr);
        return {
          manifest: poolManifest(p),
          key: poolKey(p.cidr),
          row: [cidrName(p.cidr), p.cidr, `/${p.blockSize}`, p.mode, String(p.disabled), labels(p.nodeSelector)],
          wide: [String(use?.blocks ?? 0), String(use?.used ?? 0), p.reserved.join(',') || '-', p.namespaces?.join(',') || '-', p.tenants?.join(',') || '-', p.communities?.join(',') || '-'],
        };
      });
    },
  },
  {
    kind: 'NetworkPolicy',
    aliases: ['networkpolicy', 'networkpolicies', 'netpol', 'np'],
    namespaced: true,
    header: ['NAMESPACE', 'NAME', 'TIER', 'ORDER', 'SELECTOR'],
    wideHeader: ['SOURCE'],
    list: (s) => aclItems(s, (r) => r.kind === 'Policy' && r.value.kind !== 'GlobalNetworkPolicy', policyRow),
  },
  {
    kind: 'GlobalNetworkPolicy',
    aliases: ['globalnetworkpolicy', 'globalnetworkpolicies', 'gnp'],
    header: ['NAME', 'TIER', 'ORDER', 'SELECTOR'],
    wideHeader: ['SOURCE'],
    list: (s) => aclItems(s, (r) => r.kind === 'Policy' && r.value.kind === 'GlobalNetworkPolicy', policyRow),
  },
  {
    kind: 'Tier',
    aliases: ['tier', 'tiers'],
    header: ['NAME', 'ORDER', 'DEFAULT ACTION'],
    wideHeader: ['SOURCE'],
    list: (s) => aclItems(s, (r) => r.kind === 'Tier', (r) => { const t = r.value as { name: string; order?: number; defaultAction: string }; return [t.name, t.order === undefined ? '-' : String(t.order), t.defaultAction]; }),
  },
  {
    kind: 'Tenant',
    aliases: ['tenant', 'tenants'],
    header: ['NAME', 'NAMESPACES'],
    wideHeader: ['SOURCE'],
    list: (s) => aclItems(s, (r) => r.kind === 'Tenant', (r) => { const t = r.value as { name: string; namespaces: string[] }; return [t.name, t.namespaces.join(',') || '-']; }),
  },
  {
    kind: 'ClusterSettings',
    aliases: ['clustersettings', 'settings'],
    header: ['NAME', 'TENANT ISOLATION', 'TENANT LABEL'],
    wideHeader: ['SOURCE'],
    list: (s) => aclItems(s, (r) => r.kind === 'Settings', (r) => { const t = r.value as { tenantIsolation: boolean; tenantLabel: string }; return ['default', String(t.tenantIsolation), t.tenantLabel]; }),
  },
  {
    kind: 'Namespace',
    aliases: ['namespace', 'namespaces', 'ns'],
    header: ['NAME', 'LABELS'],
    wideHeader: ['SOURCE'],
    list: (s) => aclItems(s, (r) => r.kind === 'Namespace', (r) => { const n = r.value as { name: string; labels: Record<string, string> }; return [n.name, labels(n.labels)]; }),
  },
  {
    kind: 'Node',
    aliases: ['node', 'nodes'],
    header: ['NAME', 'ADDRESSES', 'ASN', 'LABELS', 'UPDATED'],
    async list(store) {
      return (await listNodes(store)).map((n) => ({ manifest: nodeManifest(n), key: nodeKey(n.name), row: nodeRow(n) }));
    },
  },
  {
    kind: 'BGPPeer',
    aliases: ['bgppeer', 'bgppeers'],
    header: ['NAME', 'PEER', 'AS', 'NODE SELECTOR'],
    wideHeader: ['PASSIVE', 'MULTIHOP', 'BFD', 'PASSWORD FILE'],
    list: (s) =>
      bgpItems<BgpPeerResource>(
        s,
        BGP_PEERS,
        (p) => [p.name, p.peerIP ?? p.peerSelector ?? '-', p.asNumber === undefined ? '-' : String(p.asNumber), p.nodeSelector ?? 'all()'],
        (p) => [String(!!p.passive), p.multihop === undefined ? '-' : String(p.multihop), p.bfd ? `${p.bfd.minTx}/${p.bfd.minRx}ms x${p.bfd.multiplier}` : '-', p.passwordFile ?? '-'],
      ),
  },
  {
    kind: 'BGPConfiguration',
    aliases: ['bgpconfiguration', 'bgpconfigurations', 'bgpconfig'],
    header: ['NAME', 'MESH', 'AS', 'AS LABEL', 'PORT'],
    list: (s) =>
      bgpItems<BgpConfigResource>(
        s,
        BGP_CONFIGS,
        (c) => [c.name, c.nodeToNodeMesh === false ? 'off' : 'on', c.asNumber === undefined ? '-' : String(c.asNumber), c.nodeASLabel ?? '-', c.listenPort === undefined ? '-' : String(c.listenPort)],
        () => [],
      ),
  },
  {
    kind: 'WorkloadEndpoint',
    aliases: ['workloadendpoint', 'workloadendpoints', 'wep', 'endpoint', 'endpoints'],
    namespaced: true,
    readOnly: true,
    header: ['NAMESPACE', 'NAME', 'ADDRESSES', 'INTERFACE', 'LABELS', 'PORTS'],
    wideHeader: ['SOURCE'],
    list: (s) => aclItems(s, (r) => r.kind === 'Endpoint', (r) => { const [id, ...rest] = endpointRow(r.value as never); return [...id.split('/'), ...rest]; }),
  },
];

export function kindOf(name: string): KindDef {
  const k = KINDS.find((d) => d.aliases.includes(name.toLowerCase()));
  if (!k) throw new TernError('INVALID_CONFIG', `unknown kind "${name}": one of ${KINDS.map((d) => d.kind).join(', ')}`);
  return k;
}

/** Stored objects of a kind, optionally one name (and namespace). */
export async function getObjects(store: Store, def: KindDef, name?: string, namespace?: string): Promise<Item[]> {
  const items = (await def.list(store)).filter((i) => (!namespace || !def.namespaced || i.manifest.metadata.namespace === namespace) && (!name || i.manifest.metadata.name === name || (def.kind === 'IPPool' && i.manifest.spec?.cidr === name)));
  const id = (i: Item) => `${i.manifest.metadata.namespace ?? ''}/${i.manifest.metadata.name}`;
  items.sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
  if (name && items.length === 0) throw new TernError('NOT_FOUND', `${def.kind} ${namespace && def.namespaced ? `${namespace}/` : ''}${name} not found`);
  return items;
}

/** A kind's objects as a table (wide: the extra columns too). */
export function itemsTable(def: KindDef, items: Item[], wide: boolean): string {
  if (!items.length) return `no ${def.kind} stored\n`;
  return table([wide && def.wideHeader ? [...def.header, ...def.wideHeader] : def.header, ...items.map((i) => (wide && i.wide ? [...i.row, ...i.wide] : i.row))]);
}

/** Read files, directories or - (stdin) into objects; any problem in any file rejects all of them. */
export function readObjects(paths: string[], only?: string[]): Objects {
  if (!paths.length) throw new TernError('INVALID_CONFIG', 'give at least one -f FILE|DIR|-');
  const out = noObjects();
  const problems: FileProblem[] = [];
  const seen = new Map<string, string>();
  for (const p of paths) {
    let files: string[];
    try {
      files = p === '-' ? ['-'] : policyFiles(p);
    } catch (e) {
      throw fileError(p, e);
    }
    for (const file of files) {
      let text: string;
      try {
        text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (e) {
        throw fileError(file, e);
      }
      try {
        const o = parseObjects(text, file === '-' ? '(stdin)' : file, only);
        const ids = [...o.acl.map((r) => `${r.kind}/${r.key}`), ...o.pools.map((x) => `IPPool/${x.cidr}`), ...o.nodes.map((n) => `Node/${n.name}`), ...o.bgp.map((r) => `${r.kind}/${r.name}`)];
        for (const id of ids) {
          if (seen.has(id)) problems.push({ file, line: 1, field: 'metadata.name', message: `${id} is also defined in ${seen.get(id)}` });
          seen.set(id, file);
        }
        out.acl.push(...o.acl);
        out.pools.push(...o.pools);
        out.nodes.push(...o.nodes);
        out.bgp.push(...o.bgp);
      } catch (e) {
        if (e instanceof PolicyFileError) problems.push(...e.problems);
        else throw e;
      }
    }
  }
  if (problems.length) throw new PolicyFileError(problems);
  return out;
}

/**
 * IPAM rules for each pool change: no overlap, block size fixed under blocks, no
 * delete under used addresses. Returns the guards the write's transaction
 * carries, so a racing writer cannot slip past the check: every stored pool
 * unchanged since it was read, and no block of a pool whose block size changes.
 */
async function checkPools(store: Store, changes: { cidr: string; next?: IPPool }[]): Promise<TxnOp[]> {
  if (!changes.length) return [];
  const st = await loadIpamState(store);
  const blocks = [...st.blocks.values()].map(({ block: b }) => ({ pool: b.pool, cidr: b.cidr, used: Object.keys(b.used).length }));
  const pools = new Map([...st.pools.values()].map(({ pool }) => [pool.cidr, pool]));
  const guards: TxnOp[] = [...st.pools.values()].map((x): TxnOp => ({ op: 'check', key: x.kv.key, revision: x.kv.modRevision }));
  for (const c of changes) {
    const prev = pools.get(c.cidr);
    validatePoolChange(prev, c.next, [...pools.values()], blocks);
    if (prev && c.next && prev.blockSize !== c.next.blockSize) {
      const range = `${BLOCKS}${cidrName(c.cidr)}/`;
      guards.push({ op: 'absent', key: range, end: range.slice(0, -1) + '0' });
    }
    if (c.next) pools.set(c.cidr, c.next);
    else pools.delete(c.cidr);
  }
  return guards;
}

export interface WriteReport {
  changed: string[];
  unchanged: string[];
}

/** Store (apply) or remove (delete) objects in one transaction; an object already as asked is left alone. */
export async function writeObjects(store: Store, op: 'apply' | 'delete', o: Objects): Promise<WriteReport> {
  const ops: TxnOp[] = [];
  const rep: WriteReport = { changed: [], unchanged: [] };
  const put = async (id: string, key: string, value: string) => {
    const cur = await store.get(key);
    if (op === 'delete' ? !cur : cur?.value === value) return void rep.unchanged.push(id);
    ops.push(op === 'delete' ? { op: 'delete', key } : { op: 'put', key, value });
    rep.changed.push(id);
  };
  for (const r of o.acl) {
    const cur = await store.get(resourceKey(r));
    // Same document as stored: keep the stored copy (its origin names the file it first came from).
    const same = cur && JSON.stringify((JSON.parse(cur.value) as Documented).manifest) === JSON.stringify(r.manifest) && r.manifest !== undefined;
    await put(r.kind === 'Policy' ? r.key : `${KIND_NAME[r.kind] ?? r.kind}/${r.key}`, resourceKey(r), same ? cur.value : JSON.stringify(r));
  }
  const guards = await checkPools(store, o.pools.map((p) => ({ cidr: p.cidr, next: op === 'apply' ? p : undefined })));
  for (const p of o.pools) await put(`IPPool/${cidrName(p.cidr)}`, poolKey(p.cidr), JSON.stringify(p));
  for (const n of o.nodes) {
    const cur = await store.get(nodeKey(n.name));
    const prev = cur ? (JSON.parse(cur.value) as NodeRecord) : undefined;
    const same = prev && JSON.stringify([prev.addresses, prev.asn, prev.labels]) === JSON.stringify([n.addresses, n.asn, n.labels]);
    const rec: NodeRecord = same ? prev : { ...n, updated: new Date().toISOString(), ...(prev?.vtep ? { vtep: prev.vtep } : {}) };
    await put(`Node/${n.name}`, nodeKey(n.name), same ? cur!.value : JSON.stringify(rec));
  }
  for (const r of o.bgp) await put(`${r.kind}/${r.name}`, bgpKey(r), JSON.stringify(r));
  if (ops.length && !(await store.txn([...ops, ...guards])).ok) throw new TernError('TRY_AGAIN_LATER', 'the datastore changed while writing (another writer); run the command again');
  return rep;
}

/** Remove one stored object by kind and name (pools only without addresses in use). */
export async function deleteObject(store: Store, def: KindDef, name: string, namespace = 'default'): Promise<void> {
  if (def.readOnly) throw new TernError('INVALID_CONFIG', `${def.kind} is read-only: the CNI plugin records endpoints`);
  const [item] = await getObjects(store, def, name, def.namespaced ? namespace : undefined);
  if (def.kind === 'IPPool') await checkPools(store, [{ cidr: String(item.manifest.spec!.cidr) }]);
  await store.txn([{ op: 'delete', key: item.key }]);
}

const KIND_NAME: Record<string, string> = { Settings: 'ClusterSettings', Endpoint: 'WorkloadEndpoint' };
const collect = (v: string, prev: string[] = []) => [...prev, v];

export function report(cmd: Command, verb: string, r: WriteReport): void {
  const lines = [...r.changed.map((id) => `${id} ${verb}`), ...r.unchanged.map((id) => `${id} unchanged`)];
  emit(cmd, r, () => [...lines, `${verb} ${lines.length} resources (${r.changed.length} changed)`].join('\n') + '\n');
}

export function register(program: Command): void {
  const kinds = KINDS.map((k) => k.kind).join(', ');
  const get = example(
    program
      .command('get <kind> [name]')
      .description(`list stored objects, or show one: ${kinds}`)
      .option('-n, --namespace <ns>', 'only this namespace (namespaced kinds)'),
    'ternctl get ippool -o wide',
    'ternctl get networkpolicy web-from-clients -n shop -o yaml',
    'ternctl get ippool 10.244.0.0-16 -o yaml > pool.yaml && ternctl apply -f pool.yaml',
  ).action(async (kind: string, name: string | undefined, o: { namespace?: string }, cmd: Command) => {
    const def = kindOf(kind);
    const items = await withStore(cmd, (s) => getObjects(s, def, name, o.namespace));
    const f = formatOf(cmd);
    if (f === 'yaml') return void process.stdout.write(items.map((i) => YAML.stringify(i.manifest)).join('---\n'));
    const data = name && items.length === 1 ? items[0].manifest : { apiVersion: 'v1', kind: 'List', items: items.map((i) => i.manifest) };
    emit(cmd, data, (wide) => itemsTable(def, items, wide));
  });
  argumentWords.set(get, KINDS.map((k) => k.aliases[0]));

  example(
    program
      .command('apply')
      .description(`store the objects of YAML/JSON files (several documents each; ${KINDS.filter((k) => !k.readOnly).map((k) => k.kind).join(', ')}), all or none`)
      .requiredOption('-f, --file <path>', 'file, directory or - for stdin (repeatable)', collect),
    'ternctl apply -f pools-and-policies.yaml',
    'ternctl get tier -o yaml | ternctl apply -f -',
  ).action(async (o: { file: string[] }, cmd: Command) => {
    const objs = readObjects(o.file);
    report(cmd, 'applied', await withStore(cmd, (s) => writeObjects(s, 'apply', objs), true));
  });

  const del = example(
    program
      .command('delete [kind] [name]')
      .description('remove one object (KIND NAME) or the objects named in files (-f)')
      .option('-n, --namespace <ns>', 'namespace of a namespaced kind', 'default')
      .option('-f, --file <path>', 'file, directory or - for stdin (repeatable)', collect),
    'ternctl delete ippool 10.250.0.0-16',
    'ternctl delete -f shop.yaml',
  ).action(async (kind: string | undefined, name: string | undefined, o: { namespace: string; file?: string[] }, cmd: Command) => {
    if (o.file?.length) {
      if (kind) throw new TernError('INVALID_CONFIG', 'give KIND NAME or -f FILE, not both');
      const objs = readObjects(o.file);
      return report(cmd, 'deleted', await withStore(cmd, (s) => writeObjects(s, 'delete', objs)));
    }
    if (!kind || !name) throw new TernError('INVALID_CONFIG', 'give KIND NAME (e.g. ternctl delete ippool 10.250.0.0-16) or -f FILE');
    const def = kindOf(kind);
    await withStore(cmd, (s) => deleteObject(s, def, name, o.namespace));
    report(cmd, 'deleted', { changed: [`${def.kind}/${name}`], unchanged: [] });
  });
  argumentWords.set(del, KINDS.filter((k) => !k.readOnly).map((k) => k.aliases[0]));
}
