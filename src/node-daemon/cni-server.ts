/**
 * The daemon's CNI endpoint: a root-only unix socket that runs the same
 * `handle()` as the standalone plugin, warm, in-process. A malformed or
 * oversized request gets CNI error JSON and closes only its own connection.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger } from '../lib/log';
import { TernError, messageOf } from '../lib/errors';
import { cniErrorOutcome, type Outcome } from '../lib/errors-cni';
import { MAX_REQUEST, decodeCniRequest, encodeCniResponse } from './cni-wire';

export interface CniServerDeps {
  socketPath: string;
  log: Logger;
  handle: (env: NodeJS.ProcessEnv, stdin: string) => Promise<Outcome>;
  /** Called with each request's duration and outcome, for metrics. */
  observe?: (command: string, ms: number, outcome: Outcome) => void;
  /** Called for each request that could not be decoded or was too large (answered with code 6). */
  malformed?: (why: 'oversized' | 'malformed') => void;
  timeoutMs?: number;
}

const errorOutcome = (e: unknown): Buffer => {
  const o = cniErrorOutcome(e);
  return encodeCniResponse(o.exitCode, o.stdout);
};

/**
 * Refuse a socket path that holds anything but a socket: pointed (by mistake)
 * at a datastore or any other file, the daemon must neither delete it nor start.
 */
export function checkSocketPath(socketPath: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new TernError('INVALID_CONFIG', `cniSocket ${socketPath} exists and is not a socket (a ${st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symbolic link' : 'regular file'}); refusing to replace it`);
}

export class CniServer {
  private server?: net.Server;
  /** The inode of the socket this server created: stop() removes that one only. */
  private ino?: number;
  constructor(private readonly deps: CniServerDeps) {}

  async start(): Promise<void> {
    const { socketPath, log } = this.deps;
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    checkSocketPath(socketPath);
    // A socket left by a killed daemon would make listen fail; remove it only if nothing answers on it.
    if (fs.existsSync(socketPath) && !(await answers(socketPath))) fs.rmSync(socketPath, { force: true });
    // allowHalfOpen: the shim half-closes after its request and waits for the answer.
    const server = net.createServer({ allowHalfOpen: true }, (conn) => this.serve(conn));
    const oldMask = process.umask(0o177); // the socket is born 0600: root only
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => resolve());
      });
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(socketPath, 0o600);
    this.ino = fs.lstatSync(socketPath).ino;
    this.server = server;
    log.info({ socket: socketPath }, 'CNI socket listening');
  }

  private serve(conn: net.Socket): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (buf: Buffer): void => {
      if (done) return;
      done = true;
      conn.end(buf);
    };
    conn.setTimeout(this.deps.timeoutMs ?? 60_000, () => {
      finish(errorOutcome(new TernError('TRY_AGAIN_LATER', 'request timed out')));
      conn.destroy();
    });
    conn.on('error', () => conn.destroy());
    conn.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_REQUEST + 64 * 1024) {
        this.deps.malformed?.('oversized');
        finish(errorOutcome(new TernError('DECODE_FAILURE', `request exceeds ${MAX_REQUEST} bytes`)));
        conn.destroy();
        return;
      }
      chunks.push(d);
    });
    conn.on('end', () => {
      if (done) return;
      const req = decodeCniRequest(Buffer.concat(chunks));
      if (!req.ok) {
        this.deps.log.warn({ error: req.error }, 'malformed CNI request');
        this.deps.malformed?.('malformed');
        finish(errorOutcome(new TernError('DECODE_FAILURE', `malformed request: ${req.error}`)));
        return;
      }
      const t0 = process.hrtime.bigint();
      const env: NodeJS.ProcessEnv = { ...req.env, PATH: process.env.PATH };
      this.deps
        .handle(env, req.stdin)
        .then((o) => {
          this.deps.observe?.(req.env.CNI_COMMAND ?? '', Number(process.hrtime.bigint() - t0) / 1e6, o);
          finish(encodeCniResponse(o.exitCode, o.stdout));
        })
        .catch((e) => finish(errorOutcome(new TernError('INTERNAL', `internal error: ${messageOf(e)}`, { cause: e }))));
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    // libuv unlinks the listening path on close, whatever is there now; keep anything that is not our socket out of its way.
    const p = this.deps.socketPath;
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(p);
    } catch {
      /* already gone */
    }
    const foreign = st && !(st.isSocket() && st.ino === this.ino);
    const aside = `${p}.tern-keep-${process.pid}`;
    if (foreign) fs.renameSync(p, aside);
    try {
      await new Promise<void>((resolve) => s.close(() => resolve()));
    } finally {
      if (foreign) fs.renameSync(aside, p);
    }
  }
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
