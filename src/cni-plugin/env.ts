/** The CNI_* environment, validated per command (CNI code 4 names the bad variable). */
import { TernError } from '../lib/errors';
import { isAddress } from '../lib/cidr';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';
const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

export interface CniEnv {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  path: string[];
  args: Map<string, string>;
}

const badEnv = (name: string, why: string): TernError => new TernError('INVALID_ENV', `${name}: ${why}`);

export function parseCniArgs(s: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!s) return out;
  for (const pair of s.split(';')) {
    if (!pair) continue;
    const i = pair.indexOf('=');
    if (i <= 0) throw badEnv('CNI_ARGS', `"${pair}" is not KEY=VALUE`);
    out.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return out;
}

export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND as Command | undefined;
  if (!command) throw badEnv('CNI_COMMAND', 'missing');
  if (!COMMANDS.includes(command)) throw badEnv('CNI_COMMAND', `unknown command "${command}"`);
  const needsAttachment = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  const netns = env.CNI_NETNS ?? '';
  if (needsAttachment) {
    if (!containerId) throw badEnv('CNI_CONTAINERID', 'missing');
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(containerId)) throw badEnv('CNI_CONTAINERID', 'must start with an alphanumeric and contain only [a-zA-Z0-9_.-]');
    if (!ifname) throw badEnv('CNI_IFNAME', 'missing');
    if (ifname.length > 15 || ifname === '.' || ifname === '..' || /[/:\s]/.test(ifname)) throw badEnv('CNI_IFNAME', `"${ifname}" is not a valid interface name`);
    if ((command === 'ADD' || command === 'CHECK') && !netns) throw badEnv('CNI_NETNS', 'missing');
    if (!env.CNI_PATH) throw badEnv('CNI_PATH', 'missing');
  }
  const args = parseCniArgs(env.CNI_ARGS);
  const ip = args.get('IP');
  if (ip) for (const a of ip.split(',')) if (!isAddress(a.trim())) throw badEnv('CNI_ARGS', `IP=${ip}: "${a}" is not an IP address`);
  return { command, containerId, netns, ifname, path: (env.CNI_PATH ?? '').split(':').filter(Boolean), args };
}
