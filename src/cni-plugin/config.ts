/**
 * Network configuration as the runtime hands it to the plugin on stdin.
 * Every field but `type` and `ipam.pools` is optional. A bad field is
 * reported by name (CNI code 7).
 */
import { TernError } from '../lib/errors';
import { isAddress, parsePrefix } from '../lib/cidr';
import { checkVersion, type CniVersion } from './version';
import { parseDatastoreField, type DatastoreConfig } from '../datastore/config';

export type { DatastoreConfig };

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  ipam: { type: string; pools: string[]; raw: Record<string, unknown> };
  datastore: DatastoreConfig;
  /** 0 means: detect from the node's uplink. */
  mtu: number;
  logFile?: string;
  logLevel: string;
  nodename?: string;
  dns?: unknown;
  runtimeIps: string[];
  argsIps: string[];
  labels: { key: string; value: string }[];
  ports: { name: string; protocol: string; port: number }[];
  prevResult?: Record<string, unknown>;
  validAttachments?: { containerID: string; ifname: string }[];
  raw: Record<string, unknown>;
}

export const DEFAULT_LOG_FILE = '/var/log/tern/cni.log';

const bad = (field: string, why: string): TernError => new TernError('INVALID_CONFIG', `invalid field "${field}": ${why}`);

function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(field, 'must be an object');
  return v as Record<string, unknown>;
}

function optString(o: Record<string, unknown>, k: string, field = k): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(field, 'must be a string');
  return v;
}

function stringList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(field, 'must be a list of strings');
  return v as string[];
}

/** Strip an optional prefix length from "10.0.0.5/24" (the `ips` capability sends CIDRs). */
function ipOnly(s: string, field: string): string {
  const a = s.split('/')[0];
  if (!isAddress(a)) throw bad(field, `"${s}" is not an IP address`);
  return a;
}

export function parseStdin(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new TernError('DECODE_FAILURE', `cannot decode network configuration: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TernError('DECODE_FAILURE', 'network configuration must be a JSON object');
  return v as Record<string, unknown>;
}

/** Parse and validate. `needIpam` is false for VERSION/GC-style calls that never allocate. */
export function parseNetConf(raw: Record<string, unknown>, opts: { needIpam: boolean }): NetConf {
  const cniVersion = checkVersion(raw.cniVersion);
  const name = optString(raw, 'name');
  if (!name) throw bad('name', 'missing');
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw bad('name', 'must start with an alphanumeric and contain only [a-zA-Z0-9_.-]');
  const type = optString(raw, 'type');
  if (!type) throw bad('type', 'missing');

  let ipam: NetConf['ipam'] = { type: 'tern-ipam', pools: [], raw: {} };
  if (raw.ipam !== undefined || opts.needIpam) {
    if (raw.ipam === undefined) throw bad('ipam', 'missing');
    const io = obj(raw.ipam, 'ipam');
    const itype = optString(io, 'type', 'ipam.type');
    if (!itype) throw bad('ipam.type', 'missing');
    const pools = stringList(io.pools, 'ipam.pools');
    if (itype === 'tern-ipam') {
      if (opts.needIpam && !pools.length) throw bad('ipam.pools', 'needs at least one CIDR');
      for (const [i, p] of pools.entries()) {
        try {
          parsePrefix(p);
        } catch (e) {
          throw bad(`ipam.pools[${i}]`, (e as Error).message);
        }
      }
    }
    ipam = { type: itype, pools, raw: io };
  }

  let mtu = 0;
  if (raw.mtu !== undefined && raw.mtu !== null) {
    if (typeof raw.mtu !== 'number' || !Number.isInteger(raw.mtu) || (raw.mtu !== 0 && (raw.mtu < 68 || raw.mtu > 65535))) {
      throw bad('mtu', 'must be 0 (auto) or an integer from 68 to 65535');
    }
    mtu = raw.mtu;
  }
  // Read by the native shim; checked here so a mistyped one is refused instead of silently using the default socket.
  const cniSocket = optString(raw, 'cni_socket');
  if (cniSocket !== undefined && !cniSocket.startsWith('/')) throw bad('cni_socket', 'must be an absolute path');
  const logLevel = optString(raw, 'log_level') ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) throw bad('log_level', `unknown level "${logLevel}"`);

  const rc = raw.runtimeConfig === undefined ? {} : obj(raw.runtimeConfig, 'runtimeConfig');
  const runtimeIps = stringList(rc.ips, 'runtimeConfig.ips').map((s) => ipOnly(s, 'runtimeConfig.ips'));
  const args = raw.args === undefined ? {} : obj(raw.args, 'args');
  const cniArgs = args.cni === undefined ? {} : obj(args.cni, 'args.cni');
  const argsIps = stringList(cniArgs.ips, 'args.cni.ips').map((s) => ipOnly(s, 'args.cni.ips'));
  const labels = parseLabels(cniArgs.labels);
  const ports = parsePorts(cniArgs.ports);

  let validAttachments: NetConf['validAttachments'];
  const va = raw['cni.dev/valid-attachments'];
  if (va !== undefined) {
    if (!Array.isArray(va)) throw bad('cni.dev/valid-attachments', 'must be a list');
    validAttachments = va.map((x, i) => {
      const o = obj(x, `cni.dev/valid-attachments[${i}]`);
      if (typeof o.containerID !== 'string' || typeof o.ifname !== 'string') throw bad(`cni.dev/valid-attachments[${i}]`, 'needs containerID and ifname');
      return { containerID: o.containerID, ifname: o.ifname };
    });
  }

  return {
    cniVersion,
    name,
    type,
    ipam,
    datastore: parseDatastoreField(raw.datastore),
    mtu,
    logFile: optString(raw, 'log_file') ?? DEFAULT_LOG_FILE,
    logLevel,
    nodename: optString(raw, 'nodename'),
    dns: raw.dns,
    runtimeIps,
    argsIps,
    labels,
    ports,
    prevResult: raw.prevResult === undefined ? undefined : obj(raw.prevResult, 'prevResult'),
    validAttachments,
    raw,
  };
}

function parseLabels(v: unknown): NetConf['labels'] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw bad('args.cni.labels', 'must be a list of {key, value}');
  return v.map((x, i) => {
    const o = obj(x, `args.cni.labels[${i}]`);
    if (typeof o.key !== 'string' || typeof o.value !== 'string') throw bad(`args.cni.labels[${i}]`, 'needs string key and value');
    return { key: o.key, value: o.value };
  });
}

function parsePorts(v: unknown): NetConf['ports'] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw bad('args.cni.ports', 'must be a list of {name, protocol, port}');
  return v.map((x, i) => {
    const o = obj(x, `args.cni.ports[${i}]`);
    const port = o.port ?? o.containerPort;
    if (typeof o.name !== 'string' || typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw bad(`args.cni.ports[${i}]`, 'needs a name and a port from 1 to 65535');
    }
    const protocol = typeof o.protocol === 'string' ? o.protocol.toUpperCase() : 'TCP';
    if (!['TCP', 'UDP', 'SCTP'].includes(protocol)) throw bad(`args.cni.ports[${i}].protocol`, `must be TCP, UDP or SCTP`);
    return { name: o.name, protocol, port };
  });
}
