/**
 * Running kernel tools (iptables-restore, ipset, ethtool) inside a network
 * namespace, by path, through nsenter. One helper for the whole dataplane:
 * `Exec` is asynchronous, so a long iptables or ipset run never blocks the
 * daemon's event loop (CNI requests, BGP keepalives, health), and it is a
 * plain function type, so tests can inject their own (record, fail, pause).
 */
import { spawn, spawnSync } from 'node:child_process';
import { TernError, messageOf } from '../lib/errors';

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type Exec = (cmd: string, args: string[], input?: string) => Promise<CmdResult>;

const MAX_OUTPUT = 256 << 20;
const TIMEOUT_MS = 120_000;

function argv(netnsPath: string | undefined, cmd: string, args: string[]): string[] {
  return netnsPath ? ['nsenter', `--net=${netnsPath}`, '--', cmd, ...args] : [cmd, ...args];
}

/** Run commands inside a namespace (a /run/netns path) or, without one, where this process runs. */
export function netnsExec(netnsPath?: string, timeoutMs = TIMEOUT_MS): Exec {
  return (cmd, args, input) =>
    new Promise((resolve, reject) => {
      const [bin, ...rest] = argv(netnsPath, cmd, args);
      const child = spawn(bin, rest, { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const collect = (into: Buffer[]) => (d: Buffer) => {
        size += d.length;
        if (size > MAX_OUTPUT) child.kill('SIGKILL');
        else into.push(d);
      };
      child.stdout.on('data', collect(out));
      child.stderr.on('data', collect(err));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new TernError('IO_FAILURE', `${cmd}: ${messageOf(e)}`, { cause: e }));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const stderr = Buffer.concat(err).toString('utf8') + (signal ? `\nkilled by ${signal}` : '');
        resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr });
      });
      // A tool that exits before reading all its input closes the pipe; its exit code tells what happened.
      child.stdin.on('error', () => undefined);
      child.stdin.end(input ?? '');
    });
}

/** The output of a command that must succeed; a failure names the command and its first lines of stderr. */
export async function mustExec(exec: Exec, cmd: string, args: string[], input?: string): Promise<string> {
  const r = await exec(cmd, args, input);
  if (r.code !== 0) throw new TernError('IO_FAILURE', `${cmd} ${args.join(' ')} failed (${r.code}): ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(0, 3).join(' | ')}`);
  return r.stdout;
}

/**
 * The synchronous form, for the few callers that run once at start-up or in a
 * short-lived CLI process (kernel feature probes, ethtool on a new VTEP).
 */
export function execSync(netnsPath: string | undefined, cmd: string, args: string[], input?: string, timeoutMs = 30_000): CmdResult {
  const [bin, ...rest] = argv(netnsPath, cmd, args);
  const r = spawnSync(bin, rest, { input, encoding: 'utf8', maxBuffer: MAX_OUTPUT, timeout: timeoutMs });
  if (r.error) throw new TernError('IO_FAILURE', `${cmd}: ${messageOf(r.error)}`, { cause: r.error });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
