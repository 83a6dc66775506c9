/** ternctl node …: run the node daemon, list the registered nodes. */
import type { Command } from 'commander';
import { createLogger } from '../lib/log';
import { withDatastore } from '../datastore/open';
import { NodeDaemon, loadDaemonConfig } from '../node-daemon';
import { listNodes, removeNode } from '../node-daemon/registry';
import type { DaemonStatus } from '../node-daemon/daemon';
import { TernError } from '../lib/errors';

export function register(program: Command): void {
  const node = program.command('node').description('the per-node daemon');
  node
    .command('run')
    .description('run the node daemon in the foreground (serves the CNI fast path, /healthz, /readyz, /metrics)')
    .requiredOption('-c, --config <file>', 'daemon config file (YAML or JSON)')
    .addHelpText('after', '\nExample:\n  ternctl node run --config /etc/tern/node.yaml\n')
    .action(async (opts: { config: string }) => {
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

  node
    .command('list')
    .description('the nodes registered in the datastore')
    .addHelpText('after', '\nExamples:\n  ternctl node list\n  ternctl --datastore https://10.0.0.1:2379 node list -o json\n')
    .action(async (_opts, cmd: Command) => {
      const g = cmd.optsWithGlobals() as { datastore?: string; output?: string };
      const nodes = await withDatastore(g.datastore, listNodes);
      if (g.output === 'json') {
        process.stdout.write(JSON.stringify(nodes, null, 2) + '\n');
        return;
      }
      const rows = [['NAME', 'ADDRESSES', 'ASN', 'LABELS', 'UPDATED'], ...nodes.map((n) => [n.name, n.addresses.join(',') || '-', n.asn ? String(n.asn) : '-', Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-', n.updated])];
      const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
      process.stdout.write(rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n');
    });

  node
    .command('remove <name>')
    .description("take a node out of the registry: every other node drops its BGP session and its routes (a running daemon there registers again when restarted)")
    .addHelpText('after', '\nExample:\n  ternctl node remove node4\n')
    .action(async (name: string, _opts, cmd: Command) => {
      const g = cmd.optsWithGlobals() as { datastore?: string };
      await withDatastore(g.datastore, async (store) => {
        if (!(await listNodes(store)).some((n) => n.name === name)) throw new TernError('NOT_FOUND', `no node ${name} (see ternctl node list)`);
        await removeNode(store, name);
      });
      process.stdout.write(`node ${name} removed\n`);
    });
}

/** `ternctl status`: the node daemon's view, like `calicoctl node status` and `birdc show protocols`. */
export function registerStatus(program: Command): void {
  program
    .command('status')
    .description("this node's daemon: health, datastore, owned blocks, BGP sessions, ACL sync")
    .option('--url <url>', "the daemon's health address (healthListen)", 'http://127.0.0.1:9099')
    .addHelpText('after', '\nExamples:\n  ternctl status\n  ternctl status -o json\n\nExit code 1 when the daemon is not ready, its datastore is unreachable, a BGP session is not Established, or the ACL rules or policy directory failed to apply.\n')
    .action(async (o: { url: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals() as { output?: string };
      let st: DaemonStatus;
      try {
        const r = await fetch(`${o.url.replace(/\/$/, '')}/status`);
        st = (await r.json()) as DaemonStatus;
      } catch (e) {
        throw new TernError('TRY_AGAIN_LATER', `no node daemon answers at ${o.url}: ${(e as Error).message}`);
      }
      const healthy = st.ready && st.datastore.reachable && (st.bgp?.peers ?? []).every((p) => p.state === 'Established') && !st.acl?.lastError && !st.acl?.policyDir.lastError && !st.overlay?.lastError;
      if (g.output === 'json') process.stdout.write(JSON.stringify(st, null, 2) + '\n');
      else {
        const lines = [
          `Tern node ${st.node}: ${st.ready ? 'ready' : 'NOT READY'}`,
          `Datastore: ${st.datastore.type} ${st.datastore.where} (${st.datastore.reachable ? 'reachable' : 'UNREACHABLE'})`,
          `Blocks: ${st.blocks.join(', ') || '(none)'}`,
        ];
        if (st.bgp) {
          lines.push(`BGP: AS ${st.bgp.asn}, router ID ${st.bgp.routerId}`);
          const rows = [['PEER', 'ASN', 'STATE', 'SINCE', 'RECEIVED', 'SENT', 'INFO'], ...st.bgp.peers.map((p) => [p.address, String(p.asn), p.state, p.since.slice(11, 19), String(p.accepted), String(p.sent), p.lastError ?? ''])];
          const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
          for (const r of rows) lines.push('  ' + r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd());
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
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (!healthy) process.exitCode = 1;
    });
}
