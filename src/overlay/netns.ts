/**
 * Sockets and commands bound to a node's network namespace. Netlink sockets
 * come from the dataplane's adapter (setns in, open, setns back).
 */
import { spawnSync } from 'node:child_process';
import { NetnsHandle, Rtnl } from '../dataplane';
import { TernError, messageOf } from '../lib/errors';

/** An rtnetlink adapter in `netnsPath` (e.g. /run/netns/x), or in our own namespace when undefined. */
export function openRtnl(netnsPath?: string): Rtnl {
  if (!netnsPath) return Rtnl.open();
  const h = NetnsHandle.open(netnsPath);
  try {
    return Rtnl.open(h);
  } finally {
    h.close();
  }
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
