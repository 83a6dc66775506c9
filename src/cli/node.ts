/** ternctl node …: run the node daemon, list the registered nodes. */
import type { Command } from 'commander';
import { createLogger } from '../lib/log';
import { DEFAULT_NODE_CONFIG, emit, example, nodeConfig, table, withStore } from './output';
import { NodeDaemon, loadDaemonConfig } from '../node-daemon';
import { listNodes } from '../node-daemon/registry';
import { deleteObject, kindOf, nodeRow } from './resources';
import { notReady, type DaemonStatus } from '../node-daemon/health';
import { peerInfo } from './bgp';
import { TernError } from '../lib/errors';

export function register(program: Command): void {
  const node = program.command('node').description('the per-node daemon');
  example(
    node
      .command('run')
      .description('run the node daemon in the foreground (serves the CNI fast path, /healthz, /readyz, /metrics)')
      .requiredOption('-c, --config <file>', 'daemon config file (YAML or JSON)'),
    'ternctl node run --config /etc/tern/node.yaml',
  ).action(async (opts: { config: string }) => {
      const config = loadDaemonConfig(opts.config);
      const log = createLogger({ level: config.logLevel, sync: false, name: 'tern-node' });
      const daemon = new NodeDaemon(config, log);
      await daemon.start();
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log.info({ signal: sig }, 'stopping');
          void daemon.stop().finally(() => {
            log.flush();
            resolve();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });

  example(node.command('list').description('the nodes registered in the datastore'), 'ternctl node list', 'ternctl --datastore https://10.0.0.1:2379 node list -o json').action(async (_opts, cmd: Command) => {
    const nodes = await withStore(cmd, listNodes);
    emit(cmd, nodes, () => table([['NAME', 'ADDRESSES', 'ASN', 'LABELS', 'UPDATED'], ...nodes.map(nodeRow)]));
  });

  example(
    node.command('remove <name>').description('take a node out of the registry: every other node drops its BGP session and its routes (a running daemon there registers again when restarted)'),
    'ternctl node remove node4',
  ).action(async (name: string, _opts, cmd: Command) => {
      // The same path as `ternctl delete node NAME`.
      await withStore(cmd, (store) => deleteObject(store, kindOf('node'), name));
      process.stdout.write(`node ${name} removed\n`);
    });
}

export function formatStatus(st: DaemonStatus): string {
  const why = st.notReady ?? notReady(st);
  const lines = [
    `Tern node ${st.node}: ${why.length ? `NOT READY: ${why.join('; ')}` : 'ready'}`,
    `Datastore: ${st.datastore.type} ${st.datastore.where} (${st.datastore.reachable ? 'reachable' : 'UNREACHABLE'})`,
    `Blocks: ${st.blocks.join(', ') || '(none)'}`,
  ];
  if (st.sockets) lines.push(`Sockets: CNI ${st.sockets.cni}${st.sockets.control ? `, BGP control ${st.sockets.control}` : ''}`);
  if (st.bgp) {
    lines.push(`BGP: AS ${st.bgp.asn}, router ID ${st.bgp.routerId}`);
    const rows = [['PEER', 'ASN', 'STATE', 'SINCE', 'RECEIVED', 'SENT', 'INFO'], ...st.bgp.peers.map((p) => [p.address, String(p.asn), p.state, p.since.slice(11, 19), String(p.accepted), String(p.sent), peerInfo(p)])];
    lines.push(...table(rows).trimEnd().split('\n').map((l) => `  ${l}`));
  } else lines.push('BGP: off');
  const o = st.overlay;
  lines.push(o ? `Mode: ${o.mode}${o.vtep ? `, VTEP ${o.vtep.mac} on ${o.vtep.underlayIp}, tunnel ${o.vtep.tunnelIp}, ${o.remotes} remote nodes` : ''}${o.lastError ? `; FAILED: ${o.lastError}` : ''}` : `Mode: routed${st.bgp ? ' (BGP)' : ''}`);
  if (st.acl) {
    const a = st.acl;
    const d = a.policyDir;
    lines.push(
      a.active
        ? `ACL: ${a.lastError ? `SYNC FAILED: ${a.lastError}` : `in sync (${a.backend}) at ${a.lastSync?.slice(11, 19) ?? '-'}`}, ${a.policies} policies, ${a.endpoints} endpoints`
        : `ACL: not in use (no policy, tenant or setting stored), ${a.endpoints} endpoints`,
      `Policy directory: ${d.path ? `${d.path} ${d.present ? `(${d.resources} resources${d.lastError ? `; REJECTED: ${d.lastError}` : ''})` : '(absent)'}` : 'off'}`,
    );
  }
  return lines.join('\n') + '\n';
}

/** `ternctl status`: the node daemon's view, like `calicoctl node status` and `birdc show protocols`. */
export function registerStatus(program: Command): void {
  example(
    program
      .command('status')
      .description("this node's daemon: readiness (the rule /readyz answers with), datastore, owned blocks, sockets, BGP sessions, ACL sync")
      .option('-c, --config <file>', `the daemon's config, for healthListen and the socket paths (default ${DEFAULT_NODE_CONFIG} when present)`)
      .option('--url <url>', "the daemon's health address (default: http://<healthListen> from the config)")
      .addHelpText('after', '\nExit code 1 when the node is not ready (as /readyz says) or no daemon answers.\n'),
    'ternctl status',
    'ternctl status --config /etc/tern/node.yaml -o json',
  ).action(async (o: { url?: string; config?: string }, cmd: Command) => {
    let url = o.url;
    if (!url) {
      const listen = nodeConfig(o.config).healthListen;
      if (!listen) throw new TernError('INVALID_CONFIG', `healthListen is off in ${o.config ?? DEFAULT_NODE_CONFIG}: give --url`);
      url = `http://${listen}`;
    }
    let st: DaemonStatus;
    try {
      const r = await fetch(`${url.replace(/\/$/, '')}/status`);
      st = (await r.json()) as DaemonStatus;
    } catch (e) {
      throw new TernError('NOT_READY', `no node daemon answers at ${url}: ${(e as Error).message}`);
    }
    emit(cmd, st, () => formatStatus(st));
    const why = st.notReady ?? notReady(st);
    if (why.length) throw new TernError('CHECK_FAILED', `node ${st.node} is not ready: ${why.join('; ')}`);
  });
}
