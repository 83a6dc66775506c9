/**
 * Node daemons on one L2 segment (a bridge in a switch namespace), sharing
 * one datastore (SQLite by default, or etcd): each node namespace runs
 * `ternctl node run` and can be stopped and started again, with a changed
 * BGP section if need be, as an operator restarts the service.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_BIN, waitFor, type Daemon, type Netns, type Sandbox } from './index';
import { ternConfig } from './cni';

/** The shared segment 192.0.2.0/24; the switch itself is 192.0.2.1. */
export interface Lan {
  sw: Netns;
  /** Put a namespace on the segment with this address (/24). */
  attach(ns: Netns, ip: string): void;
}

export function makeLan(sb: Sandbox): Lan {
  const sw = sb.netns('sw');
  sw.ip('link', 'add', 'br0', 'type', 'bridge');
  sw.ip('addr', 'add', '192.0.2.1/24', 'dev', 'br0');
  sw.ip('link', 'set', 'br0', 'up');
  let port = 0;
  return {
    sw,
    attach(ns, ip) {
      const p = `p${port++}`;
      sb.link(ns, 'uplink0', sw, p, { aAddr: `${ip}/24` });
      sw.ip('link', 'set', p, 'master', 'br0');
    },
  };
}

export interface ClusterNode {
  name: string;
  ns: Netns;
  ip: string;
  /** CNI config that reaches this node's daemon. */
  conf: Record<string, any>;
  daemon?: Daemon;
  /** The daemon config's `bgp:` line; change it, then start() again. */
  bgp: string;
  /** (Re)start the daemon and wait for its CNI socket. */
  start(): Promise<void>;
}

export interface ClusterOptions {
  bgp: string;
  pools?: string[];
  lan?: Lan;
  /** Node labels (the daemon config's `labels`), per node name. */
  labels?: Record<string, Record<string, string>>;
  /** Daemon `datastore:` value (YAML) and the CNI config's datastore; default: one SQLite file. */
  datastore?: { yaml: string; cni: Record<string, unknown> };
}

export async function startCluster(sb: Sandbox, names: string[], opts: ClusterOptions): Promise<{ nodes: Record<string, ClusterNode>; db: string; dir: string; lan: Lan }> {
  const dir = sb.tmpdir();
  const db = path.join(dir, 'tern.db');
  const lan = opts.lan ?? makeLan(sb);
  const ds = opts.datastore ?? { yaml: `{type: sqlite, path: ${db}}`, cni: { type: 'sqlite', path: db } };
  const nodes: Record<string, ClusterNode> = {};
  for (const [i, name] of names.entries()) {
    const ns = sb.netns(name);
    const ip = `192.0.2.${11 + i}`;
    lan.attach(ns, ip);
    ns.ip('route', 'add', 'default', 'via', '192.0.2.1');
    ns.must('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    const socket = path.join(dir, `${name}.sock`);
    const cfg = path.join(dir, `${name}.yaml`);
    const node: ClusterNode = {
      name,
      ns,
      ip,
      bgp: opts.bgp,
      conf: ternConfig(dir, { nodename: name, cni_socket: socket, datastore: ds.cni, ipam: { type: 'tern-ipam', pools: opts.pools ?? ['10.244.0.0/16'] } }),
      async start() {
        fs.writeFileSync(
          cfg,
          [`nodename: ${name}`, `nodenameFile: ${dir}/${name}.nodename`, `addresses: [${ip}/24]`, `cniSocket: ${socket}`, 'healthListen: 127.0.0.1:9099', "policyDir: ''", `datastore: ${ds.yaml}`, 'asn: 64512', `labels: ${JSON.stringify(opts.labels?.[name] ?? {})}`, node.bgp, 'logLevel: debug', ''].join('\n'),
        );
        fs.rmSync(socket, { force: true }); // a crashed daemon's socket must not pass for the new one's
        node.daemon = sb.daemon(path.join(DIST_BIN, 'ternctl'), ['node', 'run', '--config', cfg], { netns: ns });
        await waitFor(() => fs.existsSync(socket) || undefined, { what: `${name} daemon`, timeoutMs: 30_000 });
      },
    };
    nodes[name] = node;
    await node.start();
  }
  return { nodes, db, dir, lan };
}
