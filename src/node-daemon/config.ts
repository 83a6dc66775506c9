/** The node daemon's configuration file (YAML or JSON). Errors name the file and field. */
import * as fs from 'node:fs';
import YAML from 'yaml';
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
  let raw: unknown;
  try {
    raw = YAML.parse(text);
  } catch (e) {
    throw new TernError('INVALID_CONFIG', `${file}: ${(e as Error).message}`);
  }
  return parseDaemonConfig(raw ?? {}, file);
}

export function parseDaemonConfig(raw: unknown, file = 'config'): DaemonConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TernError('INVALID_CONFIG', `${file}: must be a mapping`);
  const o = raw as Record<string, unknown>;
  const str = (k: string, d: string): string => {
    const v = o[k];
    if (v === undefined || v === null) return d;
    if (typeof v !== 'string') throw new TernError('INVALID_CONFIG', `${file}: field "${k}" must be a string`);
    return v;
  };
  const cniSocket = str('cniSocket', DEFAULT_CNI_SOCKET);
  if (!cniSocket.startsWith('/')) throw new TernError('INVALID_CONFIG', `${file}: field "cniSocket" must be an absolute path`);
  const controlSocket = str('controlSocket', defaultControlSocket(cniSocket));
  if (!controlSocket.startsWith('/')) throw new TernError('INVALID_CONFIG', `${file}: field "controlSocket" must be an absolute path`);
  const healthListen = str('healthListen', '127.0.0.1:9099');
  if (healthListen && !/^[^:]+:\d{1,5}$/.test(healthListen)) throw new TernError('INVALID_CONFIG', `${file}: field "healthListen" must be host:port`);
  let datastore: DatastoreConfig;
  try {
    datastore = parseDatastoreField(o.datastore);
  } catch (e) {
    throw new TernError('INVALID_CONFIG', `${file}: ${(e as Error).message}`);
  }
  const addresses = o.addresses ?? [];
  if (!Array.isArray(addresses) || addresses.some((a) => typeof a !== 'string')) throw new TernError('INVALID_CONFIG', `${file}: field "addresses" must be a list of strings`);
  const asn = o.asn;
  if (asn !== undefined && (typeof asn !== 'number' || !Number.isInteger(asn) || asn < 1 || asn > 4294967295)) {
    throw new TernError('INVALID_CONFIG', `${file}: field "asn" must be an integer from 1 to 4294967295`);
  }
  const labels = o.labels ?? {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels) || Object.values(labels).some((v) => typeof v !== 'string')) {
    throw new TernError('INVALID_CONFIG', `${file}: field "labels" must be a mapping of strings`);
  }
  return {
    nodename: o.nodename === undefined ? undefined : str('nodename', ''),
    nodenameFile: str('nodenameFile', NODENAME_FILE),
    addresses: addresses as string[],
    asn: asn as number | undefined,
    labels: labels as Record<string, string>,
    bgp: parseBgp(o.bgp, asn as number | undefined, file),
    cniSocket,
    controlSocket,
    datastore,
    healthListen,
    logLevel: str('logLevel', 'info'),
    policyDir: str('policyDir', DEFAULT_POLICY_DIR),
    ipam: parseIpamSettings(o.ipam, file),
    vxlan: parseVxlan(o.vxlan, o.bgp, file),
  };
}

function parseVxlan(v: unknown, bgp: unknown, file: string): DaemonConfig['vxlan'] {
  if (v === undefined || v === null || v === false) return undefined;
  const o = (v === true ? {} : v) as Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o)) throw new TernError('INVALID_CONFIG', `${file}: field "vxlan" must be a mapping`);
  if (o.vni !== undefined && (!Number.isInteger(o.vni) || (o.vni as number) < 1 || (o.vni as number) > 16777215)) throw new TernError('INVALID_CONFIG', `${file}: field "vxlan.vni" must be 1 to 16777215`);
  if (o.port !== undefined && (!Number.isInteger(o.port) || (o.port as number) < 1 || (o.port as number) > 65535)) throw new TernError('INVALID_CONFIG', `${file}: field "vxlan.port" must be a port number`);
  // Both would install routes to remote blocks, and the BGP FIB's mark and sweep would take the overlay's.
  if (bgp !== undefined && bgp !== null && bgp !== false) throw new TernError('INVALID_CONFIG', `${file}: field "vxlan": turn "bgp" off on a VXLAN node (the overlay needs only IP reachability between nodes)`);
  return { vni: o.vni as number | undefined, port: o.port as number | undefined };
}

function parseIpamSettings(v: unknown, file: string): DaemonConfig['ipam'] {
  const o = (v ?? {}) as Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o)) throw new TernError('INVALID_CONFIG', `${file}: field "ipam" must be a mapping`);
  const out = { reclaimInterval: o.reclaimInterval ?? 300, emptyBlockGrace: o.emptyBlockGrace ?? 900 };
  for (const [k, n] of Object.entries(out)) {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 86400 * 30) throw new TernError('INVALID_CONFIG', `${file}: field "ipam.${k}" must be a whole number of seconds`);
  }
  return out as DaemonConfig['ipam'];
}

function parseBgp(v: unknown, nodeAsn: number | undefined, file: string): BgpSettings | undefined {
  if (v === undefined || v === null || v === false) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new TernError('INVALID_CONFIG', `${file}: field "bgp" must be a mapping`);
  const o = v as Record<string, unknown>;
  const asn = (o.asn ?? nodeAsn ?? 64512) as number;
  const port = (o.port ?? 179) as number;
  const restartTime = (o.restartTime ?? 120) as number;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TernError('INVALID_CONFIG', `${file}: field "bgp.port" must be a port number`);
  if (!Number.isInteger(restartTime) || restartTime < 0 || restartTime > 4095) throw new TernError('INVALID_CONFIG', `${file}: field "bgp.restartTime" must be 0 to 4095`);
  const importPools = (o.importPools ?? []) as unknown;
  if (!Array.isArray(importPools) || importPools.some((x) => typeof x !== 'string')) throw new TernError('INVALID_CONFIG', `${file}: field "bgp.importPools" must be a list of CIDRs`);
  // Explicit peers and the numbers go through the speaker's own validation (field names included).
  let peers: PeerSpec[] = [];
  try {
    peers = validateSpeaker({ asn, routerId: (o.routerId as string) ?? '0.0.0.1', peers: o.peers ?? [], holdTime: o.holdTime }).peers;
  } catch (e) {
    throw new TernError('INVALID_CONFIG', `${file}: ${(e as Error).message}`);
  }
  let reflectors: BgpSettings['reflectors'];
  if (o.reflectors !== undefined && o.reflectors !== null) {
    const r = o.reflectors as Record<string, unknown>;
    if (typeof r !== 'object' || Array.isArray(r) || typeof r.selector !== 'string' || !/^[^=\s]+=[^=\s]*$/.test(r.selector)) {
      throw new TernError('INVALID_CONFIG', `${file}: field "bgp.reflectors.selector" must be a node label as key=value`);
    }
    if (r.clusterId !== undefined && (typeof r.clusterId !== 'string' || !/^\d+\.\d+\.\d+\.\d+$/.test(r.clusterId))) {
      throw new TernError('INVALID_CONFIG', `${file}: field "bgp.reflectors.clusterId" must be an IPv4-style ID`);
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
