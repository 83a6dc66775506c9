/**
 * Netlink sockets and commands bound to a node's network namespace. A
 * netlink socket stays in the namespace it was created in, so we switch the
 * thread in with setns(), create the socket, and switch straight back.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRtNetlink, type RtNetlinkSocket } from 'netlink';
import { TernError, messageOf } from '../lib/errors';

interface NetnsAddon {
  openNetns(p: string): number;
  setns(fd: number): void;
  close(fd: number): void;
}

let addon: NetnsAddon | undefined;
function loadAddon(): NetnsAddon {
  if (addon) return addon;
  // src/overlay (vitest) and dist/src/overlay (built) sit at different depths.
  const candidates = [path.resolve(__dirname, '../../native/build/Release/tern_netns.node'), path.resolve(__dirname, '../../../native/build/Release/tern_netns.node')];
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) throw new TernError('INTERNAL', `setns addon not built (looked in ${candidates.join(', ')})`);
  addon = require(found) as NetnsAddon;
  return addon;
}

/** An rtnetlink socket in `netnsPath` (e.g. /run/netns/x), or in our own namespace when undefined. */
export function openRtNetlink(netnsPath?: string): RtNetlinkSocket {
  if (!netnsPath) return createRtNetlink();
  const a = loadAddon();
  const home = a.openNetns('/proc/thread-self/ns/net');
  let target: number | undefined;
  try {
    target = a.openNetns(netnsPath);
    a.setns(target);
    try {
      return createRtNetlink();
    } finally {
      a.setns(home);
    }
  } finally {
    if (target !== undefined) a.close(target);
    a.close(home);
  }
}

export function closeRtNetlink(s: RtNetlinkSocket): void {
  s.socket.close();
}

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a tool (ethtool, iptables-restore) inside the namespace via nsenter. */
export function runIn(netnsPath: string | undefined, cmd: string, args: string[], input?: string): CmdResult {
  const argv = netnsPath ? ['nsenter', `--net=${netnsPath}`, '--', cmd, ...args] : [cmd, ...args];
  const r = spawnSync(argv[0], argv.slice(1), { input, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new TernError('IO_FAILURE', `${cmd}: ${messageOf(r.error)}`, { cause: r.error });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function mustRunIn(netnsPath: string | undefined, cmd: string, args: string[], input?: string): string {
  const r = runIn(netnsPath, cmd, args, input);
  if (r.code !== 0) throw new TernError('IO_FAILURE', `${cmd} ${args.join(' ')} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}
