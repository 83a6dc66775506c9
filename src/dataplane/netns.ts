/**
 * Network namespaces through the native setns(2) addon. A netlink socket stays
 * bound to the namespace it was opened in, so one process can hold sockets on
 * both the host and the container side. Switching is synchronous and always
 * restored before returning, so no other code ever runs in the wrong netns.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TernError, errnoOf } from '../lib/errors';

interface NetnsAddon {
  openNetns(path: string): number;
  setns(fd: number): void;
  close(fd: number): void;
  setTcpMd5(fd: number, address: string, key: string): void;
  tcpSocket(family: 4 | 6): number;
  setTtl(fd: number, ttl: number, minTtl: number): void;
}

let addon: NetnsAddon | undefined;

/** Find native/build/Release from either src/ (vitest) or dist/src/ (built). */
export function loadAddon(): NetnsAddon {
  if (addon) return addon;
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'native', 'build', 'Release', 'tern_netns.node');
    if (fs.existsSync(candidate)) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addon = require(candidate) as NetnsAddon;
      return addon;
    }
    dir = path.dirname(dir);
  }
  throw new TernError('INTERNAL', 'native addon tern_netns.node not found: run npm install');
}

/** An open handle on a network namespace (the file descriptor keeps it alive). */
export class NetnsHandle {
  private closed = false;
  private constructor(readonly fd: number, readonly path: string) {}

  static open(nsPath: string): NetnsHandle {
    try {
      return new NetnsHandle(loadAddon().openNetns(nsPath), nsPath);
    } catch (e) {
      const errno = errnoOf(e);
      if (errno === 2) throw new TernError('NOT_FOUND', `network namespace ${nsPath} does not exist`, { cause: e });
      throw new TernError('IO_FAILURE', `cannot open network namespace ${nsPath}`, { cause: e });
    }
  }

  /** The namespace this thread is in now. */
  static current(): NetnsHandle {
    return NetnsHandle.open(`/proc/self/task/${process.pid}/ns/net`);
  }

  /**
   * Run `fn` synchronously inside this namespace and switch back, whatever happens.
   * Only synchronous work belongs here: a socket opened inside stays bound to it.
   */
  run<T>(fn: () => T): T {
    const a = loadAddon();
    const home = NetnsHandle.current();
    try {
      a.setns(this.fd);
      try {
        return fn();
      } finally {
        a.setns(home.fd);
      }
    } finally {
      home.close();
    }
  }

  close(): void {
    if (!this.closed) {
      this.closed = true;
      loadAddon().close(this.fd);
    }
  }
}

/** `make()` run inside the namespace at `nsPath` (a socket it creates stays there), or here without one. */
export function createIn<T>(nsPath: string | undefined, make: () => T): T {
  if (!nsPath) return make();
  const ns = NetnsHandle.open(nsPath);
  try {
    return ns.run(make);
  } finally {
    ns.close();
  }
}

/** True if `nsPath` names a usable network namespace. */
export function netnsExists(nsPath: string): boolean {
  if (!nsPath) return false;
  try {
    NetnsHandle.open(nsPath).close();
    return true;
  } catch {
    return false;
  }
}

/** Socket options the BGP speaker needs and Node lacks (TCP MD5, TTL), injected as a capability. */
export function bgpSocketOptions(): { socket(family: 4 | 6): number; setKey(fd: number, address: string, key: string): void; setTtl(fd: number, ttl: number, minTtl: number): void } {
  return {
    socket: (family) => loadAddon().tcpSocket(family),
    setKey: (fd, address, key) => loadAddon().setTcpMd5(fd, address, key),
    setTtl: (fd, ttl, minTtl) => loadAddon().setTtl(fd, ttl, minTtl),
  };
}
