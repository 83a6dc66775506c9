/** ternctl node …: run the node daemon, list the registered nodes. */
import type { Command } from 'commander';
import { createLogger } from '../lib/log';
import { withDatastore } from '../datastore/config';
import { NodeDaemon, loadDaemonConfig } from '../node-daemon';
import { listNodes } from '../node-daemon/registry';

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
}
