/** ternctl node …: run the node daemon. */
import type { Command } from 'commander';
import { createLogger } from '../lib/log';
import { NodeDaemon, loadDaemonConfig } from '../node-daemon';

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
}
