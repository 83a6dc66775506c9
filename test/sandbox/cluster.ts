/**
 * Node daemons on one L2 segment (a bridge in a switch namespace), sharing
 * one SQLite datastore: each node namespace runs `ternctl node run` and can
 * be stopped and started again, as an operator restarts the service.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_BIN, waitFor, type Daemon, type Netns, type Sandbox } from './index';
import { ternConfig } from './cni';

export interface ClusterNode {
  name: string;
  ns: Netns;
  ip: string;
  /** CNI config that reaches this node's daemon. */
  conf: Record<string, any>;
  daemon?: Daemon;
  /** (Re)start the daemon and wait for its CNI socket. */
  start(): Promise<void>;
}

export async function startCluster(sb: Sandbox, names: string[], opts: { bgp: string; pools?: string[] }): Promise<{ nodes: Record<string, ClusterNode>; db: string; dir: string }> {
  const dir = sb.tmpdir();
  const db = path.join(dir, 'tern.db');
  const sw = sb.netns('sw');
  sw.ip('link', 'add', 'br0', 'type', 'bridge');
  sw.ip('addr', 'add', '192.0.2.1/24', 'dev', 'br0');
  sw.ip('link', 'set', 'br0', 'up');
  const nodes: Record<string, ClusterNode> = {};
  for (const [i, name] of names.entries()) {
    const ns = sb.netns(name);
    const ip = `192.0.2.${11 + i}`;
    sb.link(ns, 'uplink0', sw, `p${i}`, { aAddr: `${ip}/24` });
    sw.ip('link', 'set', `p${i}`, 'master', 'br0');
    ns.ip('route', 'add', 'default', 'via', '192.0.2.1');
    ns.must('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    const socket = path.join(dir, `${name}.sock`);
    const cfg = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(
      cfg,
      [`nodename: ${name}`, `nodenameFile: ${dir}/${name}.nodename`, `addresses: [${ip}/24]`, `cniSocket: ${socket}`, 'healthListen: 127.0.0.1:9099', "policyDir: ''", `datastore: {type: sqlite, path: ${db}}`, 'asn: 64512', opts.bgp, 'logLevel: debug', ''].join('\n'),
    );
    const node: ClusterNode = {
      name,
      ns,
      ip,
      conf: ternConfig(dir, { nodename: name, cni_socket: socket, ipam: { type: 'tern-ipam', pools: opts.pools ?? ['10.244.0.0/16'] } }),
      async start() {
        node.daemon = sb.daemon(path.join(DIST_BIN, 'ternctl'), ['node', 'run', '--config', cfg], { netns: ns });
        await waitFor(() => fs.existsSync(socket) || undefined, { what: `${name} daemon`, timeoutMs: 30_000 });
      },
    };
    nodes[name] = node;
    await node.start();
  }
  return { nodes, db, dir };
}
