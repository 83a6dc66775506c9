/**
 * Test sandbox: "nodes" and "pods" are network namespaces named under a
 * per-run prefix, daemons are tracked by PID, and everything is removed in
 * afterAll, with a global teardown as the backstop after a crash or timeout.
 * Nothing here touches the root network namespace.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { probeVlan8021q } from '../../src/overlay/kernel-features';

export const REPO = path.resolve(__dirname, '..', '..');
export const STATE_DIR = path.join(REPO, '.test-state');
/** PIDs this run started, per run prefix, so a run's backstop never kills another run's processes. */
export function pidDir(): string {
  return path.join(STATE_DIR, 'pids', runPrefix());
}
export const DIST_BIN = path.join(REPO, 'dist', 'bin');

export function aclKnownDir(prefix: string): string {
  return path.join(STATE_DIR, 'acl-known', prefix);
}

/** Run-wide prefix, set by the global setup; a fallback keeps ad-hoc runs unique too. */
export function runPrefix(): string {
  if (!process.env.TERN_TEST_PREFIX) process.env.TERN_TEST_PREFIX = 'tt' + crypto.randomBytes(2).toString('hex');
  // The ACL record standalone syncs leave for the next process (acl/known-rules.ts): the run's own, never the host's /run/tern.
  process.env.TERN_ACL_STATE_DIR ??= aclKnownDir(process.env.TERN_TEST_PREFIX);
  return process.env.TERN_TEST_PREFIX;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ShOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  cwd?: string;
}

export function sh(cmd: string, args: string[], opts: ShOptions = {}): ExecResult {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    input: opts.input,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30_000,
    maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  return { code: r.status ?? (r.signal ? 128 : 1), stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Like sh but throws on a non-zero exit. */
export function must(cmd: string, args: string[], opts: ShOptions = {}): string {
  const r = sh(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export async function shAsync(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // the child may exit before reading all its input
    child.stdin.end(opts.input ?? '');
  });
}

function pidStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Record a PID (with its start time, so a reused PID is never killed) for the backstop. */
export function trackPid(pid: number): void {
  fs.mkdirSync(pidDir(), { recursive: true });
  const start = pidStartTime(pid);
  if (start) fs.writeFileSync(path.join(pidDir(), `${pid}`), start);
}

export function untrackPid(pid: number): void {
  fs.rmSync(path.join(pidDir(), `${pid}`), { force: true });
}

/** Kill a tracked PID only if it is still the process we started. */
export function killTracked(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  const file = path.join(pidDir(), `${pid}`);
  let start: string | undefined;
  try {
    start = fs.readFileSync(file, 'utf8');
  } catch {
    return;
  }
  if (pidStartTime(pid) === start) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
  if (signal === 'SIGKILL') untrackPid(pid);
}

export function listNetns(): string[] {
  try {
    return fs.readdirSync('/run/netns');
  } catch {
    return [];
  }
}

export class Netns {
  constructor(readonly name: string) {}
  get path(): string {
    return `/run/netns/${this.name}`;
  }
  /** Run a command inside this namespace (nsenter keeps the mount namespace as is). */
  exec(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): ExecResult {
    return sh('nsenter', [`--net=${this.path}`, '--', cmd, ...args], opts);
  }
  must(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): string {
    return must('nsenter', [`--net=${this.path}`, '--', cmd, ...args], opts);
  }
  execAsync(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ExecResult> {
    return shAsync('nsenter', [`--net=${this.path}`, '--', cmd, ...args], opts);
  }
  ip(...args: string[]): string {
    return must('ip', ['-n', this.name, ...args]);
  }
  ipJson<T = any>(...args: string[]): T {
    return JSON.parse(must('ip', ['-j', '-n', this.name, ...args]) || '[]') as T;
  }
  sysctl(key: string, value: string): void {
    this.must('sysctl', ['-qw', `${key}=${value}`]);
  }
  ping(addr: string, count = 1, timeoutS = 2): boolean {
    const six = addr.includes(':') ? ['-6'] : [];
    return this.exec('ping', [...six, '-n', '-q', '-c', String(count), '-W', String(timeoutS), '-i', '0.2', addr]).code === 0;
  }
}

export interface Daemon {
  pid: number;
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals, waitMs?: number): Promise<void>;
}

/**
 * A per-file sandbox. `tag` keeps names distinct between test files of one run.
 * Call `cleanup()` in afterAll; the global teardown catches whatever a crash left.
 */
export class Sandbox {
  readonly prefix: string;
  private readonly namespaces: Netns[] = [];
  private readonly daemons: Daemon[] = [];
  private readonly tmpDirs: string[] = [];

  constructor(tag: string) {
    if (!/^[a-z0-9]{1,8}$/.test(tag)) throw new Error(`sandbox tag must be [a-z0-9]{1,8}: ${tag}`);
    this.prefix = `${runPrefix()}-${tag}`;
  }

  /** Create a namespace `${prefix}-${name}` with lo up. */
  netns(name: string): Netns {
    const ns = new Netns(`${this.prefix}-${name}`);
    if (listNetns().includes(ns.name)) sh('ip', ['netns', 'del', ns.name]);
    must('ip', ['netns', 'add', ns.name]);
    this.namespaces.push(ns);
    must('ip', ['-n', ns.name, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Two namespaces joined by a veth; neither end is in the root namespace. */
  link(a: Netns, aIf: string, b: Netns, bIf: string, opts: { aAddr?: string; bAddr?: string; mtu?: number } = {}): void {
    must('ip', ['-n', a.name, 'link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
    if (opts.mtu) {
      a.ip('link', 'set', aIf, 'mtu', String(opts.mtu));
      b.ip('link', 'set', bIf, 'mtu', String(opts.mtu));
    }
    if (opts.aAddr) a.ip('addr', 'add', opts.aAddr, 'dev', aIf);
    if (opts.bAddr) b.ip('addr', 'add', opts.bAddr, 'dev', bIf);
    a.ip('link', 'set', aIf, 'up');
    b.ip('link', 'set', bIf, 'up');
  }

  /** Delete one namespace early (e.g. to test a runtime that already removed it). */
  netnsRemove(ns: Netns): void {
    killNetnsPids(ns.name);
    sh('ip', ['netns', 'del', ns.name]);
    const i = this.namespaces.indexOf(ns);
    if (i >= 0) this.namespaces.splice(i, 1);
  }

  tmpdir(): string {
    const d = fs.mkdtempSync(path.join('/tmp', `${this.prefix}-`));
    this.tmpDirs.push(d);
    return d;
  }

  /** Start a long-running process (optionally inside a namespace), tracked by PID. */
  daemon(cmd: string, args: string[], opts: { netns?: Netns; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Daemon {
    const argv = opts.netns ? ['nsenter', `--net=${opts.netns.path}`, '--', cmd, ...args] : [cmd, ...args];
    const spawnOpts: SpawnOptions = { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] };
    const child = spawn(argv[0], argv.slice(1), spawnOpts);
    if (child.pid === undefined) throw new Error(`failed to start ${cmd}`);
    const pid = child.pid;
    trackPid(pid);
    if (opts.netns) waitInNetns(pid, opts.netns.path);
    let out = '';
    child.stdout?.on('data', (d) => (out = (out + d).slice(-200_000)));
    child.stderr?.on('data', (d) => (out = (out + d).slice(-200_000)));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const d: Daemon = {
      pid,
      child,
      output: () => out,
      stop: async (signal: NodeJS.Signals = 'SIGTERM', waitMs = 5000) => {
        if (child.exitCode === null && child.signalCode === null) {
          killTracked(pid, signal);
          const t = setTimeout(() => killTracked(pid, 'SIGKILL'), waitMs);
          await exited;
          clearTimeout(t);
        }
        untrackPid(pid);
      },
    };
    this.daemons.push(d);
    return d;
  }

  async cleanup(): Promise<void> {
    for (const d of this.daemons.splice(0).reverse()) await d.stop('SIGTERM', 3000).catch(() => undefined);
    for (const ns of this.namespaces.splice(0).reverse()) {
      killNetnsPids(ns.name);
      sh('ip', ['netns', 'del', ns.name]);
    }
    for (const d of this.tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  }
}

/**
 * nsenter joins the namespace only after spawn() has returned its PID: until
 * it has, `ip netns pids` and namespace cleanup do not see the process. Wait
 * (briefly, synchronously, so callers stay synchronous) until the PID's
 * network namespace is the target, or the process has already gone.
 */
export function waitInNetns(pid: number, nsPath: string, timeoutMs = 5000): void {
  const want = fs.statSync(nsPath).ino;
  const deadline = Date.now() + timeoutMs;
  const tick = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    let cur: number | undefined;
    try {
      cur = fs.statSync(`/proc/${pid}/ns/net`).ino;
    } catch {
      return; // exited: nothing left to wait for
    }
    if (cur === want) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} did not enter ${nsPath} within ${timeoutMs} ms`);
    Atomics.wait(tick, 0, 0, 2);
  }
}

/** Kill what still runs inside a namespace we own (e.g. a ping started by a test), by PID. */
export function killNetnsPids(name: string): void {
  const r = sh('ip', ['netns', 'pids', name]);
  for (const p of r.stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  return new Promise((resolve, reject) => {
    const tick = async () => {
      try {
        const v = await fn();
        if (v !== undefined && v !== false) return resolve(v as T);
      } catch (e) {
        if (Date.now() > deadline) return reject(e);
      }
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${opts.what ?? 'condition'}`));
      setTimeout(tick, opts.intervalMs ?? 100);
    };
    void tick();
  });
}

/**
 * The one 8021q gate for tests: the same real probe `ternctl doctor` uses
 * (create a VLAN sub-interface in a scratch namespace). 'unknown' counts as
 * absent, so a test that needs 8021q never runs on a kernel that cannot say.
 */
export function kernelHas8021q(): boolean {
  return probeVlan8021q() === 'yes';
}
