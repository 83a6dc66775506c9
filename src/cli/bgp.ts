/**
 * ternctl bgp: run a standalone speaker and talk to it over its control
 * socket (serve, announce, withdraw, peers, routes); apply, get and delete
 * of the BGP resources are aliases of the resource commands.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { TernError } from '../lib/errors';
import { createLogger } from '../lib/log';
import { controlRequest, type ControlRequest, type PeerView, type RouteView } from '../bgp-speaker';
import { parsePrefix } from '../lib/cidr';
import { emit, example, fileError, nodeConfig, table, withStore } from './output';
import { KINDS, deleteObject, getObjects, itemsTable, kindOf, readObjects, report, writeObjects } from './resources';
import { BGP_KINDS, bgpResourceOf } from './manifests';
import { registerServe } from './bgp-serve';

export { DEFAULT_SOCKET } from './bgp-serve';

/** Prefixes, one per line (# comments); a bad one is invalid input naming file and line. */
function readPrefixFile(file: string): string[] {
  let text: string;
  try {
    text = file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw fileError(file, e);
  }
  const out: string[] = [];
  text.split('\n').forEach((l, i) => {
    const p = l.replace(/#.*/, '').trim();
    if (!p) return;
    try {
      parsePrefix(p, { loose: true });
    } catch (e) {
      throw new TernError('INVALID_CONFIG', `${file === '-' ? '(stdin)' : file}:${i + 1}: ${(e as Error).message}`);
    }
    out.push(p);
  });
  return out;
}

const SOCKET_HELP = "control socket (default: the node daemon's controlSocket, /run/tern/bgp.sock unless node.yaml says otherwise)";
const CONFIG_HELP = 'node daemon config that names the control socket (default /etc/tern/node.yaml when present)';

/** The socket to talk to: --socket, else the node daemon's (from --config or /etc/tern/node.yaml), else the default. */
function socketOf(o: { socket?: string; config?: string }): string {
  return o.socket ?? nodeConfig(o.config).controlSocket;
}

/** A control request; a socket that is not there is "not found" (3), one that does not answer a failure (1). */
async function request(socket: string, req: ControlRequest): Promise<unknown> {
  try {
    return await controlRequest(socket, req);
  } catch (e) {
    if (!(e instanceof TernError) || e.code !== 'TRY_AGAIN_LATER') throw e;
    const errno = (e.cause as NodeJS.ErrnoException | undefined)?.code;
    if (errno === 'ENOENT') throw new TernError('NOT_FOUND', `no BGP control socket at ${socket}: is the node daemon (with bgp) or "ternctl bgp serve" running?`);
    throw new TernError('IO_FAILURE', e.message);
  }
}

function duration(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s % 60}s`;
}

/** INFO: an Established session shows who it talks to; only a session that is down shows why. */
export function peerInfo(p: PeerView): string {
  if (p.state !== 'Established' && p.lastError) return p.lastError;
  return p.routerId ? `router id ${p.routerId}` : '';
}

export function formatPeers(peers: PeerView[]): string {
  const rows = [['Peer', 'AS', 'State', 'Since', 'Uptime', 'Received', 'Accepted', 'Sent', 'BFD', 'Info']];
  for (const p of peers) {
    const bfd = p.bfd ? `${p.bfd.state}${p.bfd.detectionTime ? ` ${p.bfd.detectionTime}ms` : ''}` : '-';
    rows.push([p.address, String(p.asn), p.state, p.since.replace('T', ' ').replace(/\.\d+Z$/, ''), duration(p.uptimeSeconds), String(p.received), String(p.accepted), String(p.sent), bfd, peerInfo(p)]);
  }
  return table(rows);
}

/** Graceful-restart leftovers: a stale best path, and how many other paths are stale. */
function staleMark(r: RouteView): string {
  const others = r.paths.filter((p) => p.stale).length - (r.best?.stale ? 1 : 0);
  return (r.best?.stale ? ' (STALE: graceful restart)' : '') + (others > 0 ? ` (+${others} stale)` : '');
}

export function formatRoutes(routes: RouteView[]): string {
  const rows = [['Prefix', 'Next hop', 'From', 'AS path', 'Paths', 'Why best']];
  for (const r of routes.sort((a, b) => a.prefix.localeCompare(b.prefix))) {
    const b = r.best;
    rows.push([r.prefix, b ? (r.multipath.length > 1 ? r.multipath.join(',') : b.nextHop) : '-', b ? b.peer : '-', b?.asPath || '(empty)', String(r.paths.length), r.reason + staleMark(r) + (r.kernelError ? ` (not in kernel: ${r.kernelError})` : '')]);
  }
  return table(rows);
}

/** Every path of each prefix (the Adj-RIB-In after import policy), the best one marked, like `birdc show route all`. */
export function formatPaths(routes: RouteView[]): string {
  const out: string[] = [];
  for (const r of routes.sort((a, b) => a.prefix.localeCompare(b.prefix))) {
    out.push(`${r.prefix}: best ${r.best ? `from ${r.best.peer}` : 'none'} (${r.reason})`);
    for (const p of r.paths) {
      const best = r.best && p.peer === r.best.peer && p.nextHop === r.best.nextHop;
      out.push(`  ${best ? '*' : ' '} from ${p.peer} via ${p.nextHop}, AS path ${p.asPath || '(empty)'}${p.stale ? ', STALE (graceful restart)' : ''}`);
    }
  }
  return out.join('\n') + '\n';
}

export function register(program: Command): void {
  const bgp = program.command('bgp').description('BGP speaker: run standalone, change what it announces, show peers and routes');

  registerServe(bgp);

  example(bgp.command('announce'), 'ternctl bgp announce --file prefixes.txt', 'echo 10.1.0.0/24 | ternctl bgp announce --file -')
    .description('originate the prefixes in FILE (one per line, - for stdin)')
    .option('--socket <path>', SOCKET_HELP)
    .option('-c, --config <file>', CONFIG_HELP)
    .requiredOption('--file <file>', 'prefixes, one per line')
    .action(async (o: { socket?: string; config?: string; file: string }, cmd: Command) => {
      const r = await request(socketOf(o), { cmd: 'announce', prefixes: readPrefixFile(o.file) });
      await emit(cmd, r, () => `announced ${(r as { announced: number }).announced}\n`);
    });

  example(bgp.command('withdraw'), 'ternctl bgp withdraw --file prefixes.txt')
    .description('stop originating the prefixes in FILE')
    .option('--socket <path>', SOCKET_HELP)
    .option('-c, --config <file>', CONFIG_HELP)
    .requiredOption('--file <file>', 'prefixes, one per line')
    .action(async (o: { socket?: string; config?: string; file: string }, cmd: Command) => {
      const r = await request(socketOf(o), { cmd: 'withdraw', prefixes: readPrefixFile(o.file) });
      await emit(cmd, r, () => `withdrew ${(r as { withdrawn: number }).withdrawn}\n`);
    });

  // Aliases of `ternctl apply -f`, `get` and `delete` for the BGP kinds (same reader, writer and lister).
  example(bgp.command('apply'), 'ternctl bgp apply -f fabric.yaml')
    .description('store BGPPeer / BGPConfiguration resources (YAML, several documents) in the datastore, all or none; nodes pick them up live (as ternctl apply -f)')
    .requiredOption('-f, --file <file>', 'YAML file, directory or - for stdin')
    .action(async (o: { file: string }, cmd: Command) => {
      const objs = readObjects([o.file], BGP_KINDS); // any problem: nothing is stored
      report(cmd, 'applied', await withStore(cmd, (s) => writeObjects(s, 'apply', objs), true));
    });

  example(bgp.command('get'), 'ternctl bgp get', 'ternctl bgp get -o json')
    .description('the BGPConfiguration and BGPPeer resources in the datastore (as ternctl get bgpconfig and get bgppeer); json/yaml: the stored resources')
    .action(async (_o: unknown, cmd: Command) => {
      const defs = BGP_KINDS.slice().reverse().map(kindOf);
      const items = await withStore(cmd, (s) => Promise.all(defs.map((d) => getObjects(s, d))));
      emit(cmd, items.flat().map((i) => bgpResourceOf(i.manifest)), (wide) => defs.map((d, n) => itemsTable(d, items[n], wide)).join('\n'));
    });

  example(bgp.command('delete <kind> <name>'), 'ternctl bgp delete BGPPeer rack1-tor1')
    .description('remove a BGPPeer or BGPConfiguration; the nodes close those sessions (as ternctl delete KIND NAME)')
    .action(async (kind: string, name: string, _o: unknown, cmd: Command) => {
      const def = KINDS.find((d) => BGP_KINDS.includes(d.kind) && d.aliases.includes(kind.toLowerCase()));
      if (!def) throw new TernError('INVALID_CONFIG', `kind must be BGPPeer or BGPConfiguration, not ${kind}`);
      await withStore(cmd, (s) => deleteObject(s, def, name));
      report(cmd, 'deleted', { changed: [`${def.kind}/${name}`], unchanged: [] });
    });

  example(bgp.command('ready'), 'ternctl bgp ready')
    .description('after --restarting: the own table is complete (all announces done), End-of-RIB may follow')
    .option('--socket <path>', SOCKET_HELP)
    .option('-c, --config <file>', CONFIG_HELP)
    .action(async (o: { socket?: string; config?: string }, cmd: Command) => {
      const r = await request(socketOf(o), { cmd: 'ready' });
      await emit(cmd, r, () => 'ready\n');
    });

  example(bgp.command('peers'), 'ternctl bgp peers', 'ternctl bgp peers -o json')
    .description('sessions: state, uptime, prefixes received and sent, last error')
    .option('--socket <path>', SOCKET_HELP)
    .option('-c, --config <file>', CONFIG_HELP)
    .action(async (o: { socket?: string; config?: string }, cmd: Command) => {
      const r = (await request(socketOf(o), { cmd: 'peers' })) as PeerView[];
      await emit(cmd, r, () => formatPeers(r));
    });

  example(bgp.command('routes [prefix]'), 'ternctl bgp routes', 'ternctl bgp routes 10.244.1.0/26', 'ternctl bgp routes -o wide')
    .description('Loc-RIB: the best path per prefix and why it won; with PREFIX or -o wide, every path received (best marked *, stale ones flagged)')
    .option('--socket <path>', SOCKET_HELP)
    .option('-c, --config <file>', CONFIG_HELP)
    .action(async (prefix: string | undefined, o: { socket?: string; config?: string }, cmd: Command) => {
      if (prefix) parsePrefix(prefix, { loose: true });
      const r = (await request(socketOf(o), { cmd: 'routes', prefix })) as RouteView[];
      if (prefix && r.length === 0) throw new TernError('NOT_FOUND', `no route for ${prefix}`);
      await emit(cmd, r, (wide) => (prefix || wide ? formatPaths(r) : formatRoutes(r)));
    });

  example(bgp.command('stats'), 'ternctl bgp stats')
    .description('speaker counters (routes, kernel writes)')
    .option('--socket <path>', SOCKET_HELP)
    .option('-c, --config <file>', CONFIG_HELP)
    .action(async (o: { socket?: string; config?: string }, cmd: Command) => {
      const r = await request(socketOf(o), { cmd: 'stats' });
      await emit(cmd, r, () => Object.entries(r as object).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n');
    });
}
