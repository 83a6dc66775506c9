/**
 * ternctl bgp serve: the standalone speaker. It is a long-lived daemon, so
 * `dist/bin/ternctl bgp serve` builds a program with this one command and
 * loads only what it needs (bin/ternctl.ts), not every area of the CLI: about
 * 5 MiB less RSS for the process's whole life. `ternctl bgp` registers the
 * same command for help and completion.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { createLogger } from '../lib/log';
import { Speaker, loadConfig, serveControl } from '../bgp-speaker';
import { KernelFib } from '../bgp-speaker/fib';
import { warmUp } from '../bgp-speaker/warmup';
import { bgpSocketOptions } from '../dataplane/netns';
import { example, mustExist } from './output';
import { newProgram } from './run-program';

export const DEFAULT_SOCKET = '/run/tern/bgp.sock';

export function registerServe(bgp: Command): void {
  example(bgp.command('serve'), 'ternctl bgp serve --config /etc/tern/bgp.yaml --socket /run/tern/bgp.sock')
    .description('run a standalone BGP speaker (like gobgpd or bird)')
    .requiredOption('--config <file>', 'YAML or JSON speaker configuration')
    .option('--socket <path>', 'control socket', DEFAULT_SOCKET)
    .option('--log-level <level>', 'log level', 'info')
    .option('--restarting', 'set the graceful-restart Restart State bit (we are coming back from a restart); End-of-RIB waits for `ternctl bgp ready`')
    .option('--ready-timeout <seconds>', 'with --restarting: send End-of-RIB after this long even without `ternctl bgp ready`', '30')
    .action(async (o: { config: string; socket: string; logLevel: string; restarting?: boolean; readyTimeout: string }) => {
      mustExist(o.config);
      const cfg = loadConfig(o.config);
      const log = createLogger({ level: o.logLevel, sync: false, name: 'tern-bgp' });
      let fib: KernelFib | undefined;
      if (cfg.installIntoKernel) {
        fib = new KernelFib(log.child({ component: 'fib' }));
        const marked = await fib.start();
        log.info({ marked }, 'kernel routes owned by Tern at start');
      }
      // Before any session: the first burst then runs compiled code (see warmup.ts).
      await warmUp({ config: cfg, kernel: fib && ((b) => fib!.rehearse(b)) });
      const speaker = new Speaker(cfg, { log: log.child({ component: 'bgp' }), fib, restarting: o.restarting, holdEndOfRib: Number(o.readyTimeout), sockopts: bgpSocketOptions() });
      await speaker.start();
      fs.mkdirSync(path.dirname(o.socket), { recursive: true });
      const control = await serveControl(speaker, o.socket);
      log.info({ socket: o.socket, peers: cfg.peers.length }, 'speaker running');
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      control.close();
      await speaker.stop();
      fib?.close();
      fs.rmSync(o.socket, { force: true });
      log.info('speaker stopped');
      log.flush();
    });
}

/** A program with only `bgp serve`, for bin/ternctl's fast path. */
export function buildServeProgram(): Command {
  const program = newProgram();
  registerServe(program.command('bgp').description('BGP speaker'));
  return program;
}
