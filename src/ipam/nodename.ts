/**
 * Node identity: blocks belong to a node. The name comes from the config
 * field `nodename`, then the file the daemon writes, then the hostname, so
 * several test "nodes" on one machine differ only by their config.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export const NODENAME_FILE = '/var/lib/tern/nodename';

export function resolveNodeName(opts: { nodename?: string; file?: string; hostname?: () => string } = {}): string {
  if (opts.nodename && opts.nodename.trim()) return opts.nodename.trim();
  try {
    const n = fs.readFileSync(opts.file ?? NODENAME_FILE, 'utf8').trim();
    if (n) return n;
  } catch {
    /* no file: fall through to the hostname */
  }
  return (opts.hostname ?? os.hostname)();
}
