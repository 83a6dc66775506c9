/** The node daemon's configuration file (YAML or JSON). Errors name the file and field. */
import * as fs from 'node:fs';
import YAML, { LineCounter } from 'yaml';
import { TernError } from '../lib/errors';
import { parseDatastoreField, type DatastoreConfig } from '../datastore/config';
import { NODENAME_FILE } from '../ipam/nodename';
import { validateConfig as validateSpeaker, type PeerSpec } from '../bgp-speaker/config';
import type { BgpSettings } from './bgp-mesh';

export interface DaemonConfig {
  nodename?: string;
  /** Where the resolved node name is written for the CNI plugin to find. */
  nodenameFile: string;
  /** Underlay addresses to publish; detected from the uplink when empty. */
  addresses: string[];
  asn?: number;
  labels: Record<string, string>;
  /** BGP: advertise own blocks, full mesh with the other nodes; absent turns BGP off. */
  bgp?: BgpSettings;
  cniSocket: string;
  /** With BGP: the root-only control socket `ternctl bgp` talks to (as `bgp serve` has). */
  controlSocket: string;
  datastore: DatastoreConfig;
  /** host:port for /healthz, /readyz and /metrics; empty disables it. */
  healthListen: string;
  logLevel: string;
  /** Policy files fed into the datastore while the daemon runs; empty turns the watch off. */
  policyDir: string;
  /** The VXLAN overlay for pools in vxlan modes; absent turns it off. */
  vxlan?: { vni?: number; port?: number };
  /** Empty blocks of this node go back to their pool after `emptyBlockGrace` seconds, checked every `reclaimInterval` (0: never). */
  ipam: { reclaimInterval: number; emptyBlockGrace: number };
}

export const DEFAULT_CNI_SOCKET = '/run/tern/cni.sock';

/** bgp.sock beside the default cni.sock; else <cniSocket>.bgp.sock, so daemons with their own CNI sockets never share one. */
export function defaultControlSocket(cniSocket: string): string {
  return cniSocket === DEFAULT_CNI_SOCKET ? '/run/tern/bgp.sock' : `${cniSocket.replace(/\.sock$/, '')}.bgp.sock`;
}

export const DEFAULT_POLICY_DIR = '/etc/tern/policies.d';

export function loadDaemonConfig(file: string): DaemonConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TernError('NOT_FOUND', `${file}: cannot read: ${(e as Error).message}`);
  }
  const lines = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new TernError('INVALID_CONFIG', `${file}:${e.linePos?.[0].line ?? 1}: ${e.message.split('\n')[0]}`);
  }
  // The line of a field, else of its nearest parent that is there.
  const lineOf = (path: string[]): number | undefined => {
    for (let n = path.length; n > 0; n--) {
      const node = doc.getIn(path.slice(0, n).map((k) => (/^\d+$/.test(k) ? Number(k) : k)), true) as { range?: [number, number, number] } | undefined;
      if (node?.range) return lines.linePos(node.range[0]).line;
    }
    return undefined;
  };
  return parseDaemonConfig(doc.toJS() ?? {}, file, lineOf);
}

/** Fields each section may have: anything else is a typo that would silently fall back to a default. */
const KNOWN: Record<string, readonly string[]> = {
  '': ['nodename', 'nodenameFile', 'addresses', 'asn', 'labels', 'bgp', 'cniSocket', 'controlSocket', 'datastore', 'healthListen', 'logLevel', 'policyDir', 'ipam', 'vxlan'],
  'datastore:sqlite': ['type', 'path'],
  'datastore:etcd': ['type', 'endpoints', 'ca', 'cert', 'key', 'prefix'],
  bgp: ['asn', 'routerId', 'mesh', 'reflectors', 'peers', 'port', 'holdTime', 'restartTime', 'importPools'],
  'bgp.reflectors': ['selector', 'clusterId'],
  ipam: ['reclaimInterval', 'emptyBlockGrace'],
  vxlan: ['vni', 'port'],
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Builds errors that name the file, the line (when known) and the field path. */
type Fail = (path: string, why: string) => TernError;

export function parseDaemonConfig(raw: unknown, file = 'config', lineOf: (path: string[]) => number | undefined = () => undefined): DaemonConfig {
  const fail: Fail = (path, why) => {
    const line = path ? lineOf(path.split('.')) : undefined;
    return new TernError('INVALID_CONFIG', `${file}${line ? `:${line}` : ''}: ${path ? `field "${path}": ` : ''}${why}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail('', 'must be a mapping');
  const o = raw as Record<string, unknown>;
  onlyKnown(o, '', KNOWN[''], fail);
  const str = (k: string, d: string): string => {
    const v = o[k];
    if (v === undefined || v === null) return d;
    if (typeof v !== 'string') throw fail(k, 'must be a string');
    return v;
  };
  const cniSocket = str('cniSocket', DEFAULT_CNI_SOCKET);
  if (!cniSocket.startsWith('/')) throw fail('cniSocket', 'must be an absolute path');
  const controlSocket = str('controlSocket', defaultControlSocket(cniSocket));
  if (!controlSocket.startsWith('/')) throw fail('controlSocket', 'must be an absolute path');
  const healthListen = str('healthListen', '127.0.0.1:9099');
  if (healthListen && !/^[^:]+:\d{1,5}$/.test(healthListen)) throw fail('healthListen', 'must be host:port');
  const ds = o.datastore;
  if (ds && typeof ds === 'object' && !Array.isArray(ds)) {
    const t = (ds as Record<string, unknown>).type;
    const known = KNOWN[`datastore:${String(t)}`];
    if (!known) throw fail('datastore.type', `must be sqlite or etcd, got ${JSON.stringify(t)}`);
    onlyKnown(ds as Record<string, unknown>, 'datastore', known, fail);
  }
  let datastore: DatastoreConfig;
  try {
    datastore = parseDatastoreField(o.datastore);
  } catch (e) {
    throw fail('datastore', (e as Error).message.replace(/^invalid field "datastore(\.\w+)?": /, ''));
  }
  const addresses = o.addresses ?? [];
  if (!Array.isArray(addresses) || addresses.some((a) => typeof a !== 'string')) throw fail('addresses', 'must be a list of strings');
  const asn = o.asn;
  if (asn !== undefined && (typeof asn !== 'number' || !Number.isInteger(asn) || asn < 1 || asn > 4294967295)) {
    throw fail('asn', 'must be an integer from 1 to 4294967295');
  }
  const labels = o.labels ?? {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels) || Object.values(labels).some((v) => typeof v !== 'string')) {
    throw fail('labels', 'must be a mapping of strings');
  }
  const logLevel = str('logLevel', 'info');
  if (!LOG_LEVELS.includes(logLevel)) throw fail('logLevel', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  return {
    nodename: o.nodename === undefined ? undefined : str('nodename', ''),
    nodenameFile: str('nodenameFile', NODENAME_FILE),
    addresses: addresses as string[],
    asn: asn as number | undefined,
    labels: labels as Record<string, string>,
    bgp: parseBgp(o.bgp, asn as number | undefined, fail),
    cniSocket,
    controlSocket,
    datastore,
    healthListen,
    logLevel,
    policyDir: str('policyDir', DEFAULT_POLICY_DIR),
    ipam: parseIpamSettings(o.ipam, fail),
    vxlan: parseVxlan(o.vxlan, o.bgp, fail),
  };
}

function onlyKnown(o: Record<string, unknown>, section: string, known: readonly string[], fail: Fail): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw fail(section ? `${section}.${k}` : k, `is not a known field (${section || 'top level'}: ${known.join(', ')})`);
  }
}

function parseVxlan(v: unknown, bgp: unknown, fail: Fail): DaemonConfig['vxlan'] {
  if (v === undefined || v === null || v === false) return undefined;
  const o = (v === true ? {} : v) as Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o)) throw fail('vxlan', 'must be a mapping');
  onlyKnown(o, 'vxlan', KNOWN.vxlan, fail);
  if (o.vni !== undefined && (!Number.isInteger(o.vni) || (o.vni as number) < 1 || (o.vni as number) > 16777215)) throw fail('vxlan.vni', 'must be 1 to 16777215');
  if (o.port !== undefined && (!Number.isInteger(o.port) || (o.port as number) < 1 || (o.port as number) > 65535)) throw fail('vxlan.port', 'must be a port number');
  // Both would install routes to remote blocks, and the BGP FIB's mark and sweep would take the overlay's.
  if (bgp !== undefined && bgp !== null && bgp !== false) throw fail('vxlan', 'turn "bgp" off on a VXLAN node (the overlay needs only IP reachability between nodes)');
  return { vni: o.vni as number | undefined, port: o.port as number | undefined };
}

function parseIpamSettings(v: unknown, fail: Fail): DaemonConfig['ipam'] {
  const o = (v ?? {}) as Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o)) throw fail('ipam', 'must be a mapping');
  onlyKnown(o, 'ipam', KNOWN.ipam, fail);
  const out = { reclaimInterval: o.reclaimInterval ?? 300, emptyBlockGrace: o.emptyBlockGrace ?? 900 };
  for (const [k, n] of Object.entries(out)) {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 86400 * 30) throw fail(`ipam.${k}`, 'must be a whole number of seconds');
  }
  return out as DaemonConfig['ipam'];
}

function parseBgp(v: unknown, nodeAsn: number | undefined, fail: Fail): BgpSettings | undefined {
  if (v === undefined || v === null || v === false) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw fail('bgp', 'must be a mapping');
  const o = v as Record<string, unknown>;
  onlyKnown(o, 'bgp', KNOWN.bgp, fail);
  if (o.reflectors && typeof o.reflectors === 'object' && !Array.isArray(o.reflectors)) onlyKnown(o.reflectors as Record<string, unknown>, 'bgp.reflectors', KNOWN['bgp.reflectors'], fail);
  const asn = (o.asn ?? nodeAsn ?? 64512) as number;
  const port = (o.port ?? 179) as number;
  const restartTime = (o.restartTime ?? 120) as number;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw fail('bgp.port', 'must be a port number');
  if (!Number.isInteger(restartTime) || restartTime < 0 || restartTime > 4095) throw fail('bgp.restartTime', 'must be 0 to 4095');
  const importPools = (o.importPools ?? []) as unknown;
  if (!Array.isArray(importPools) || importPools.some((x) => typeof x !== 'string')) throw fail('bgp.importPools', 'must be a list of CIDRs');
  // Explicit peers and the numbers go through the speaker's own validation (field names included).
  let peers: PeerSpec[] = [];
  try {
    peers = validateSpeaker({ asn, routerId: (o.routerId as string) ?? '0.0.0.1', peers: o.peers ?? [], holdTime: o.holdTime }).peers;
  } catch (e) {
    throw fail('bgp', (e as Error).message);
  }
  let reflectors: BgpSettings['reflectors'];
  if (o.reflectors !== undefined && o.reflectors !== null) {
    const r = o.reflectors as Record<string, unknown>;
    if (typeof r !== 'object' || Array.isArray(r) || typeof r.selector !== 'string' || !/^[^=\s]+=[^=\s]*$/.test(r.selector)) {
      throw fail('bgp.reflectors.selector', 'must be a node label as key=value');
    }
    if (r.clusterId !== undefined && (typeof r.clusterId !== 'string' || !/^\d+\.\d+\.\d+\.\d+$/.test(r.clusterId))) {
      throw fail('bgp.reflectors.clusterId', 'must be an IPv4-style ID');
    }
    reflectors = { selector: r.selector, clusterId: r.clusterId as string | undefined };
  }
  return {
    asn,
    routerId: o.routerId as string | undefined,
    mesh: o.mesh !== false,
    reflectors,
    peers,
    port,
    holdTime: o.holdTime as number | undefined,
    restartTime,
    importPools: importPools as string[],
  };
}
