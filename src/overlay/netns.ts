/**
 * Sockets and commands bound to a node's network namespace. Netlink sockets
 * come from the dataplane's adapter (setns in, open, setns back); commands
 * from the dataplane's one exec helper.
 */
import { NetnsHandle, Rtnl } from '../dataplane';
import { execSync, type CmdResult } from '../dataplane/exec';
import { TernError } from '../lib/errors';

export type { CmdResult } from '../dataplane/exec';

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

/** Run a tool (ethtool, iptables-restore) inside the namespace. */
export function runIn(netnsPath: string | undefined, cmd: string, args: string[], input?: string): CmdResult {
  return execSync(netnsPath, cmd, args, input);
}

export function mustRunIn(netnsPath: string | undefined, cmd: string, args: string[], input?: string): string {
  const r = runIn(netnsPath, cmd, args, input);
  if (r.code !== 0) throw new TernError('IO_FAILURE', `${cmd} ${args.join(' ')} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}
