/** Helpers for BGP interop tests: Tern, BIRD and GoBGP inside sandbox namespaces. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_BIN, sh, waitFor, type Daemon, type Netns, type Sandbox } from '../sandbox';

/** The speaker settings shared by the two-namespace interop tests (fast timers for tests). */
export const TERN_AT_T = { asn: 65001, routerId: '198.18.0.1', holdTime: 9, connectRetryTime: 2, idleHoldTime: 1, installIntoKernel: true };

export const TERNCTL = path.join(DIST_BIN, 'ternctl');

export interface TernNode {
  daemon: Daemon;
  socket: string;
  config: string;
  ctl<T = unknown>(...args: string[]): T;
}

export function startTern(sb: Sandbox, ns: Netns, dir: string, name: string, config: object, extra: string[] = []): TernNode {
  const cfgFile = path.join(dir, `${name}.json`);
  const socket = path.join(dir, `${name}.sock`);
  fs.writeFileSync(cfgFile, JSON.stringify(config, null, 2));
  const daemon = sb.daemon(process.execPath, [TERNCTL, 'bgp', 'serve', '--config', cfgFile, '--socket', socket, '--log-level', 'debug', ...extra], { netns: ns });
  return {
    daemon,
    socket,
    config: cfgFile,
    ctl<T>(...args: string[]): T {
      const r = sh(process.execPath, [TERNCTL, '-o', 'json', 'bgp', ...args, '--socket', socket]);
      if (r.code !== 0) throw new Error(`ternctl bgp ${args.join(' ')}: ${r.stderr}${r.stdout}`); // -o json puts the error on stdout
      return JSON.parse(r.stdout) as T;
    },
  };
}

export async function ternReady(t: TernNode): Promise<void> {
  await waitFor(() => fs.existsSync(t.socket), { timeoutMs: 20_000, what: `control socket ${t.socket} (${t.daemon.output().slice(-2000)})` });
}

export interface PeerRow {
  address: string;
  state: string;
  received: number;
  accepted: number;
  sent: number;
  lastError?: string;
}

/**
 * The peer's row as the speaker reports it, or undefined when no such peer is
 * configured. Throws when the speaker cannot be asked (daemon dead, socket gone),
 * so a negative test can never pass because there was nobody to answer.
 */
export function peerState(t: TernNode, address: string): PeerRow | undefined {
  return t.ctl<PeerRow[]>('peers').find((p) => p.address === address);
}

/** For negative tests: the speaker is alive and has this peer configured (throws otherwise). */
export function configuredPeer(t: TernNode, address: string): PeerRow {
  const p = peerState(t, address);
  if (!p) throw new Error(`peer ${address} is not configured in ${t.config}`);
  return p;
}

export interface BirdNode {
  daemon: Daemon;
  socket: string;
  conf: string;
  birdc(...args: string[]): string;
}

export function startBird(sb: Sandbox, ns: Netns, dir: string, name: string, conf: string): BirdNode {
  const confFile = path.join(dir, `${name}.conf`);
  const socket = path.join(dir, `${name}.ctl`);
  fs.writeFileSync(confFile, conf);
  const daemon = sb.daemon('bird', ['-c', confFile, '-s', socket, '-f'], { netns: ns });
  return {
    daemon,
    socket,
    conf: confFile,
    birdc: (...args: string[]) => sh('birdc', ['-s', socket, ...args]).stdout,
  };
}

/**
 * BIRD's own view of one BGP protocol, for negative tests: throws when BIRD does
 * not answer or does not know the protocol. `opened` says whether BIRD ever
 * received the peer's OPEN (it then shows the neighbour's ID and capabilities).
 */
export function birdBgpState(b: BirdNode, protocol: string): { up: boolean; bgpState: string; opened: boolean } {
  const r = sh('birdc', ['-s', b.socket, 'show', 'protocols', 'all', protocol]);
  if (r.code !== 0 || !new RegExp(`^${protocol}\\s+BGP`, 'm').test(r.stdout)) {
    throw new Error(`BIRD does not report protocol ${protocol}: ${(r.stdout + r.stderr).slice(0, 500)}`);
  }
  const bgpState = /BGP state:\s+(\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
  return { up: new RegExp(`^${protocol}\\s+BGP\\s+\\S+\\s+up`, 'm').test(r.stdout), bgpState, opened: /Neighbor ID:|Neighbor caps:/.test(r.stdout) };
}

/** Prefixes in `ns`'s kernel table with the given protocol, e.g. 'bird' or '86'. */
export function kernelRoutes(ns: Netns, family: 4 | 6, proto: string): string[] {
  const r = ns.ipJson<{ dst: string; protocol: string }[]>(`-${family}`, 'route', 'show', 'proto', proto);
  return r.map((x) => x.dst);
}

export function addV6(ns: Netns, dev: string, addr: string): void {
  ns.ip('-6', 'addr', 'add', addr, 'dev', dev, 'nodad');
}

/** Tern's namespace `t` (198.18.0.1, 2001:2::1) joined to a peer namespace at host number `host`. */
export function ternAndPeer(sb: Sandbox, peerName: string, host: number): { t: Netns; peer: Netns; dir: string } {
  const t = sb.netns('t');
  const peer = sb.netns(peerName);
  sb.link(t, 'eth0', peer, 'eth0', { aAddr: '198.18.0.1/24', bAddr: `198.18.0.${host}/24` });
  addV6(t, 'eth0', '2001:2::1/64');
  addV6(peer, 'eth0', `2001:2::${host}/64`);
  return { t, peer, dir: sb.tmpdir() };
}
