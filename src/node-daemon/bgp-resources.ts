/**
 * Cluster-wide BGP resources, stored in the datastore and watched by every
 * node daemon: `BGPPeer` (who peers with whom) and `BGPConfiguration` (mesh
 * on/off, default AS, per-node AS from a label, listen port). Parsed from
 * YAML with file, line and field for every problem; a file with any problem
 * is rejected whole. Pure except for the store helpers at the end.
 */
import { LineCounter, parseAllDocuments } from 'yaml';
import { PolicyFileError, type FileProblem } from '../acl/errors';
import { parseSelector, matchSelector, SelectorSyntaxError } from '../acl/selector';
import type { Store } from '../datastore/types';
import { parsePrefixRule } from '../bgp-speaker/rib';
import { isIP } from 'node:net';

/** Datastore prefixes: one key per resource, the value its JSON. */
export const BGP_RESOURCES = '/tern/bgp/v1/';
export const BGP_PEERS = `${BGP_RESOURCES}peers/`;
export const BGP_CONFIGS = `${BGP_RESOURCES}config/`;

export interface BgpPeerResource {
  kind: 'BGPPeer';
  name: string;
  /** One peer at this address ... */
  peerIP?: string;
  /** ... or every node matching this selector (at its first IPv4 address). */
  peerSelector?: string;
  /** Peer AS; default: the peer node's AS (peerSelector) or ours (iBGP). */
  asNumber?: number;
  /** Nodes that peer; default all(). */
  nodeSelector?: string;
  /** TCP MD5 key, read on the node from this file (the secret never enters the datastore). */
  passwordFile?: string;
  passive?: boolean;
  multihop?: number;
  ttlSecurity?: boolean | number;
  bfd?: { minRx: number; minTx: number; multiplier: number };
  importPrefixes?: string[];
  exportPrefixes?: string[];
  /** Do not rewrite the next hop to ourselves towards this (eBGP) peer. */
  keepOriginalNextHop?: boolean;
}

export interface BgpConfigResource {
  kind: 'BGPConfiguration';
  name: string;
  nodeToNodeMesh?: boolean;
  /** Default AS for nodes. */
  asNumber?: number;
  /** A node label whose value is the node's AS (e.g. one AS per rack). */
  nodeASLabel?: string;
  listenPort?: number;
  /** Communities a block is advertised with, by the prefix it lies in (added to its pool's own). */
  prefixAdvertisements?: { cidr: string; communities: string[] }[];
}

export type BgpResource = BgpPeerResource | BgpConfigResource;

const PEER_FIELDS = new Set(['peerIP', 'peerSelector', 'asNumber', 'nodeSelector', 'passwordFile', 'passive', 'multihop', 'ttlSecurity', 'bfd', 'importPrefixes', 'exportPrefixes', 'keepOriginalNextHop']);
const CONFIG_FIELDS = new Set(['nodeToNodeMesh', 'asNumber', 'nodeASLabel', 'listenPort', 'prefixAdvertisements']);
const COMMUNITY = /^(\d{1,10}):(\d{1,10})(?::(\d{1,10}))?$/;

/** "a:b" (each 16 bits) or large "a:b:c" (each 32 bits). */
function validCommunity(c: unknown): boolean {
  const m = typeof c === 'string' ? COMMUNITY.exec(c) : null;
  if (!m) return false;
  const max = m[3] === undefined ? 0xffff : 0xffffffff;
  return [m[1], m[2], m[3]].filter((x) => x !== undefined).every((x) => Number(x) <= max);
}
const NAME = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;

class FieldError extends Error {
  constructor(
    readonly path: (string | number)[],
    message: string,
  ) {
    super(message);
  }
}

const isInt = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;

function checkSpec(kind: string, spec: Record<string, unknown>): void {
  const allowed = kind === 'BGPPeer' ? PEER_FIELDS : CONFIG_FIELDS;
  for (const k of Object.keys(spec)) if (!allowed.has(k)) throw new FieldError(['spec', k], `unknown field for ${kind}`);
  const need = (k: string, ok: boolean, msg: string) => {
    if (spec[k] !== undefined && !ok) throw new FieldError(['spec', k], msg);
  };
  need('asNumber', isInt(spec.asNumber, 1, 4294967295), 'must be an AS number from 1 to 4294967295');
  if (kind === 'BGPConfiguration') {
    need('nodeToNodeMesh', typeof spec.nodeToNodeMesh === 'boolean', 'must be true or false');
    need('nodeASLabel', typeof spec.nodeASLabel === 'string' && spec.nodeASLabel !== '', 'must be a label key');
    need('listenPort', isInt(spec.listenPort, 1, 65535), 'must be a port');
    if (spec.prefixAdvertisements !== undefined) {
      if (!Array.isArray(spec.prefixAdvertisements)) throw new FieldError(['spec', 'prefixAdvertisements'], 'must be a list of {cidr, communities}');
      (spec.prefixAdvertisements as Record<string, unknown>[]).forEach((a, i) => {
        const at = ['spec', 'prefixAdvertisements', i];
        try {
          parsePrefixRule(String(a?.cidr));
          if (typeof a?.cidr !== 'string' || a.cidr.includes(' ')) throw new Error();
        } catch {
          throw new FieldError([...at, 'cidr'], 'must be a prefix');
        }
        if (!Array.isArray(a.communities)) throw new FieldError([...at, 'communities'], 'must be a list of communities');
        (a.communities as unknown[]).forEach((c, j) => {
          if (!validCommunity(c)) throw new FieldError([...at, 'communities', j], 'must be "a:b" (16-bit each) or "a:b:c" (32-bit each)');
        });
      });
    }
    return;
  }
  if ((spec.peerIP === undefined) === (spec.peerSelector === undefined)) throw new FieldError(['spec'], 'needs exactly one of peerIP and peerSelector');
  need('peerIP', typeof spec.peerIP === 'string' && isIP(spec.peerIP) !== 0, 'must be an IP address');
  for (const k of ['peerSelector', 'nodeSelector']) {
    if (spec[k] === undefined) continue;
    if (typeof spec[k] !== 'string') throw new FieldError(['spec', k], 'must be a selector');
    try {
      parseSelector(spec[k] as string);
    } catch (e) {
      throw new FieldError(['spec', k], e instanceof SelectorSyntaxError ? e.message : String(e));
    }
  }
  need('passwordFile', typeof spec.passwordFile === 'string' && (spec.passwordFile as string).startsWith('/'), 'must be an absolute path');
  for (const k of ['passive', 'keepOriginalNextHop']) need(k, typeof spec[k] === 'boolean', 'must be true or false');
  need('multihop', isInt(spec.multihop, 1, 255), 'must be a TTL from 1 to 255');
  need('ttlSecurity', typeof spec.ttlSecurity === 'boolean' || isInt(spec.ttlSecurity, 1, 254), 'must be true or a hop count from 1 to 254');
  if (spec.bfd !== undefined) {
    const b = spec.bfd as Record<string, unknown>;
    if (typeof b !== 'object' || b === null) throw new FieldError(['spec', 'bfd'], 'must be {minRx, minTx, multiplier}');
    for (const k of ['minRx', 'minTx']) if (!isInt(b[k], 10, 60_000)) throw new FieldError(['spec', 'bfd', k], 'must be milliseconds from 10 to 60000');
    if (!isInt(b.multiplier, 1, 255)) throw new FieldError(['spec', 'bfd', 'multiplier'], 'must be from 1 to 255');
  }
  for (const k of ['importPrefixes', 'exportPrefixes']) {
    if (spec[k] === undefined) continue;
    if (!Array.isArray(spec[k])) throw new FieldError(['spec', k], 'must be a list of prefix rules');
    (spec[k] as unknown[]).forEach((r, i) => {
      try {
        parsePrefixRule(String(r));
      } catch {
        throw new FieldError(['spec', k, i], `bad prefix rule: ${String(r)}`);
      }
    });
  }
}

/** Parse one YAML file of BGPPeer/BGPConfiguration documents; throws PolicyFileError with every problem. */
export function parseBgpResources(text: string, file: string): BgpResource[] {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const problems: FileProblem[] = [];
  const out: BgpResource[] = [];
  const seen = new Set<string>();
  for (const doc of docs) {
    if (doc.errors.length) {
      for (const e of doc.errors) problems.push({ file, line: lc.linePos(e.pos[0]).line, field: '(syntax)', message: e.message.split('\n')[0] });
      continue;
    }
    const v = doc.toJS() as Record<string, unknown> | null;
    if (v === null || v === undefined) continue;
    const lineAt = (path: (string | number)[]) => {
      for (let n = path.length; n >= 0; n--) {
        const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
        if (node && typeof node === 'object' && node.range) return lc.linePos(node.range[0]).line;
      }
      return 1;
    };
    try {
      if (typeof v !== 'object' || Array.isArray(v)) throw new FieldError([], 'must be a mapping');
      const kind = v.kind;
      if (kind !== 'BGPPeer' && kind !== 'BGPConfiguration') throw new FieldError(['kind'], 'must be BGPPeer or BGPConfiguration');
      const name = (v.metadata as Record<string, unknown> | undefined)?.name;
      if (typeof name !== 'string' || !NAME.test(name)) throw new FieldError(['metadata', 'name'], 'must be a lowercase DNS name');
      const spec = (v.spec ?? {}) as Record<string, unknown>;
      if (typeof spec !== 'object' || Array.isArray(spec)) throw new FieldError(['spec'], 'must be a mapping');
      checkSpec(kind, spec);
      const key = `${kind}/${name}`;
      if (seen.has(key)) throw new FieldError(['metadata', 'name'], `duplicate ${key}`);
      seen.add(key);
      out.push({ kind, name, ...spec } as BgpResource);
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      problems.push({ file, line: lineAt(e.path), field: e.path.join('.') || '(document)', message: e.message });
    }
  }
  if (problems.length) throw new PolicyFileError(problems);
  return out;
}

export const resourceKey = (r: Pick<BgpResource, 'kind' | 'name'>): string => `${r.kind === 'BGPPeer' ? BGP_PEERS : BGP_CONFIGS}${r.name}`;

/** The nodes (by labels) a selector picks; an absent selector picks all. */
export function selects(selector: string | undefined, labels: Record<string, string>): boolean {
  return selector === undefined || matchSelector(parseSelector(selector), labels);
}

/** This node's AS: the AS label, else the configured default, else the node's own setting. */
export function nodeAs(labels: Record<string, string>, cfg: BgpConfigResource | undefined, fallback: number): number {
  const v = cfg?.nodeASLabel ? labels[cfg.nodeASLabel] : undefined;
  const n = v === undefined ? NaN : Number(v);
  if (Number.isInteger(n) && n >= 1 && n <= 4294967295) return n;
  return cfg?.asNumber ?? fallback;
}

// ---- store ----

export async function listBgpResources(store: Store): Promise<{ peers: BgpPeerResource[]; config?: BgpConfigResource; revision: number }> {
  const snap = await store.read([], [BGP_PEERS, BGP_CONFIGS]);
  const all = [...snap.lists.values()].flat().map((kv) => JSON.parse(kv.value) as BgpResource);
  return { peers: all.filter((r): r is BgpPeerResource => r.kind === 'BGPPeer'), config: all.find((r): r is BgpConfigResource => r.kind === 'BGPConfiguration' && r.name === 'default'), revision: snap.revision };
}

// Writes go through ternctl's one resource model (src/cli/resources.ts: apply -f, delete).
