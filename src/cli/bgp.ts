/**
 * ternctl bgp: run a standalone speaker and talk to it over its control
 * socket (serve, announce, withdraw, peers, routes).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { TernError } from '../lib/errors';
import { createLogger } from '../lib/log';
import { Speaker, loadConfig, serveControl, controlRequest, type PeerView, type RouteView } from '../bgp-speaker';
import { KernelFib } from '../bgp-speaker/fib';
import { bgpSocketOptions } from '../dataplane';
import { withDatastore } from '../datastore/config';
import { parseBgpResources, applyBgpResources, listBgpResources, deleteBgpResource, type BgpResource } from '../node-daemon/bgp-resources';

export const DEFAULT_SOCKET = '/run/tern/bgp.sock';

function readPrefixFile(file: string): string[] {
  let text: string;
  try {
    text = file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TernError('INVALID_CONFIG', `cannot read ${file}`, { cause: e });
  }
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ')).join('\n') + '\n';
}

function duration(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s % 60}s`;
}

export function formatPeers(peers: PeerView[]): string {
  const rows = [['Peer', 'AS', 'State', 'Since', 'Uptime', 'Received', 'Accepted', 'Sent', 'BFD', 'Info']];
  for (const p of peers) {
    const bfd = p.bfd ? `${p.bfd.state}${p.bfd.detectionTime ? ` ${p.bfd.detectionTime}ms` : ''}` : '-';
    rows.push([p.address, String(p.asn), p.state, p.since.replace('T', ' ').replace(/\.\d+Z$/, ''), duration(p.uptimeSeconds), String(p.received), String(p.accepted), String(p.sent), bfd, p.lastError ?? (p.routerId ? `router id ${p.routerId}` : '')]);
  }
  return table(rows);
}

export function formatRoutes(routes: RouteView[]): string {
  const rows = [['Prefix', 'Next hop', 'From', 'AS path', 'Paths', 'Why best']];
  for (const r of routes.sort((a, b) => a.prefix.localeCompare(b.prefix))) {
    const b = r.best;
    rows.push([r.prefix, b ? (r.multipath.length > 1 ? r.multipath.join(',') : b.nextHop) : '-', b ? b.peer : '-', b?.asPath || '(empty)', String(r.paths.length), r.reason + (b?.stale ? ' (stale)' : '') + (r.kernelError ? ` (not in kernel: ${r.kernelError})` : '')]);
  }
  return table(rows);
}

export function register(program: Command): void {
  const bgp = program.command('bgp').description('BGP speaker: run standalone, change what it announces, show peers and routes');
  // Resolves once the text is handed to the pipe: main() exits right after the action, which cut long outputs short.
  const out = (cmd: Command, data: unknown, fmt: () => string) =>
    new Promise<void>((resolve) => process.stdout.write(cmd.optsWithGlobals().output === 'json' ? JSON.stringify(data, null, 2) + '\n' : fmt(), () => resolve()));

  bgp
    .command('serve')
    .description('run a standalone BGP speaker (like gobgpd or bird)')
    .requiredOption('--config <file>', 'YAML or JSON speaker configuration')
    .option('--socket <path>', 'control socket', DEFAULT_SOCKET)
    .option('--log-level <level>', 'log level', 'info')
    .option('--restarting', 'set the graceful-restart Restart State bit (we are coming back from a restart); End-of-RIB waits for `ternctl bgp ready`')
    .option('--ready-timeout <seconds>', 'with --restarting: send End-of-RIB after this long even without `ternctl bgp ready`', '30')
    .action(async (o: { config: string; socket: string; logLevel: string; restarting?: boolean; readyTimeout: string }) => {
      const cfg = loadConfig(o.config);
      const log = createLogger({ level: o.logLevel, sync: false, name: 'tern-bgp' });
      let fib: KernelFib | undefined;
      if (cfg.installIntoKernel) {
        fib = new KernelFib(log.child({ component: 'fib' }));
        const marked = await fib.start();
        log.info({ marked }, 'kernel routes owned by Tern at start');
      }
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

  bgp
    .command('announce')
    .description('originate the prefixes in FILE (one per line, - for stdin)')
    .option('--socket <path>', 'control socket', DEFAULT_SOCKET)
    .requiredOption('--file <file>', 'prefixes, one per line')
    .action(async (o: { socket: string; file: string }, cmd: Command) => {
      const r = await controlRequest(o.socket, { cmd: 'announce', prefixes: readPrefixFile(o.file) });
      await out(cmd, r, () => `announced ${(r as { announced: number }).announced}\n`);
    });

  bgp
    .command('withdraw')
    .description('stop originating the prefixes in FILE')
    .option('--socket <path>', 'control socket', DEFAULT_SOCKET)
    .requiredOption('--file <file>', 'prefixes, one per line')
    .action(async (o: { socket: string; file: string }, cmd: Command) => {
      const r = await controlRequest(o.socket, { cmd: 'withdraw', prefixes: readPrefixFile(o.file) });
      await out(cmd, r, () => `withdrew ${(r as { withdrawn: number }).withdrawn}\n`);
    });

  bgp
    .command('apply')
    .description('store BGPPeer / BGPConfiguration resources (YAML, several documents) in the datastore; nodes pick them up live')
    .requiredOption('-f, --file <file>', 'YAML file')
    .addHelpText('after', '\nExamples:\n  ternctl --datastore /var/lib/tern/tern.db bgp apply -f fabric.yaml\n')
    .action(async (o: { file: string }, cmd: Command) => {
      let text: string;
      try {
        text = fs.readFileSync(o.file, 'utf8');
      } catch (e) {
        throw new TernError('INVALID_CONFIG', `cannot read ${o.file}`, { cause: e });
      }
      const rs = parseBgpResources(text, o.file); // any problem: nothing is stored
      await withDatastore((cmd.optsWithGlobals() as { datastore?: string }).datastore, (store) => applyBgpResources(store, rs));
      await out(cmd, rs.map((r) => `${r.kind}/${r.name}`), () => rs.map((r) => `${r.kind}/${r.name} applied\n`).join(''));
    });

  bgp
    .command('get')
    .description('the BGPPeer and BGPConfiguration resources in the datastore')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await withDatastore((cmd.optsWithGlobals() as { datastore?: string }).datastore, listBgpResources);
      const all: BgpResource[] = [...(r.config ? [r.config] : []), ...r.peers];
      await out(cmd, all, () => table([['KIND', 'NAME', 'PEER', 'AS', 'NODES'], ...all.map((x) => (x.kind === 'BGPPeer' ? [x.kind, x.name, x.peerIP ?? x.peerSelector ?? '', String(x.asNumber ?? '-'), x.nodeSelector ?? 'all()'] : [x.kind, x.name, x.nodeToNodeMesh === false ? 'mesh off' : 'mesh on', String(x.asNumber ?? '-'), x.nodeASLabel ? `AS from label ${x.nodeASLabel}` : '-']))]));
    });

  bgp
    .command('delete <kind> <name>')
    .description('remove a BGPPeer or BGPConfiguration; the nodes close those sessions')
    .action(async (kind: string, name: string, _o: unknown, cmd: Command) => {
      if (kind !== 'BGPPeer' && kind !== 'BGPConfiguration') throw new TernError('INVALID_CONFIG', `kind must be BGPPeer or BGPConfiguration, not ${kind}`);
      const gone = await withDatastore((cmd.optsWithGlobals() as { datastore?: string }).datastore, (store) => deleteBgpResource(store, kind, name));
      if (!gone) throw new TernError('NOT_FOUND', `no ${kind} ${name}`);
      await out(cmd, { deleted: `${kind}/${name}` }, () => `${kind}/${name} deleted\n`);
    });

  bgp
    .command('ready')
    .description('after --restarting: the own table is complete (all announces done), End-of-RIB may follow')
    .option('--socket <path>', 'control socket', DEFAULT_SOCKET)
    .action(async (o: { socket: string }, cmd: Command) => {
      const r = await controlRequest(o.socket, { cmd: 'ready' });
      await out(cmd, r, () => 'ready\n');
    });

  bgp
    .command('peers')
    .description('sessions: state, uptime, prefixes received and sent, last error')
    .option('--socket <path>', 'control socket', DEFAULT_SOCKET)
    .action(async (o: { socket: string }, cmd: Command) => {
      const r = (await controlRequest(o.socket, { cmd: 'peers' })) as PeerView[];
      await out(cmd, r, () => formatPeers(r));
    });

  bgp
    .command('routes [prefix]')
    .description('Loc-RIB: the best path per prefix and why it won')
    .option('--socket <path>', 'control socket', DEFAULT_SOCKET)
    .action(async (prefix: string | undefined, o: { socket: string }, cmd: Command) => {
      const r = (await controlRequest(o.socket, { cmd: 'routes', prefix })) as RouteView[];
      if (prefix && r.length === 0) throw new TernError('NOT_FOUND', `no route for ${prefix}`);
      await out(cmd, r, () => formatRoutes(r));
    });

  bgp
    .command('stats')
    .description('speaker counters (routes, kernel writes)')
    .option('--socket <path>', 'control socket', DEFAULT_SOCKET)
    .action(async (o: { socket: string }, cmd: Command) => {
      const r = await controlRequest(o.socket, { cmd: 'stats' });
      await out(cmd, r, () => Object.entries(r as object).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n');
    });
}
