/**
 * Control socket of a standalone speaker: one JSON request per line, one
 * JSON reply per line, over a unix socket (like birdc's).
 */
import * as net from 'node:net';
import * as fs from 'node:fs';
import { TernError, messageOf } from '../lib/errors';
import type { Speaker } from './speaker';

export type ControlRequest =
  | { cmd: 'peers' }
  | { cmd: 'routes'; prefix?: string }
  | { cmd: 'announce'; prefixes: string[] }
  | { cmd: 'withdraw'; prefixes: string[] }
  | { cmd: 'ready' }
  | { cmd: 'stats' };

export type ControlReply = { ok: true; result: unknown } | { ok: false; error: string; code?: string };

function handle(s: Speaker, r: ControlRequest): unknown {
  switch (r.cmd) {
    case 'peers':
      return s.peers();
    case 'routes':
      return s.routes(r.prefix);
    case 'announce':
      return { announced: s.announce(r.prefixes) };
    case 'withdraw':
      return { withdrawn: s.withdraw(r.prefixes) };
    case 'ready':
      s.ready();
      return { ready: true };
    case 'stats':
      return s.stats();
    default:
      throw new TernError('UNSUPPORTED_FIELD', `unknown command ${(r as { cmd: string }).cmd}`);
  }
}

export function serveControl(speaker: Speaker, path: string): Promise<net.Server> {
  fs.rmSync(path, { force: true });
  const server = net.createServer((sock) => {
    // Chunks are kept as they come and joined once per line: an announce of 100k
    // prefixes is megabytes, and growing one string per chunk copied it every time.
    let chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => {
      let nl: number;
      while ((nl = d.indexOf(10)) >= 0) {
        chunks.push(d.subarray(0, nl));
        const line = Buffer.concat(chunks).toString('utf8');
        chunks = [];
        d = d.subarray(nl + 1);
        let reply: ControlReply;
        try {
          reply = { ok: true, result: handle(speaker, JSON.parse(line) as ControlRequest) };
        } catch (e) {
          reply = { ok: false, error: messageOf(e), code: e instanceof TernError ? e.code : undefined };
        }
        sock.write(JSON.stringify(reply) + '\n');
      }
      if (d.length) chunks.push(d);
    });
    sock.on('error', () => sock.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      fs.chmodSync(path, 0o600);
      resolve(server);
    });
  });
}

export function controlRequest(path: string, req: ControlRequest, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new TernError('TRY_AGAIN_LATER', `no reply on ${path}`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const reply = JSON.parse(buf.slice(0, nl)) as ControlReply;
      if (reply.ok) resolve(reply.result);
      else reject(new TernError((reply.code as never) ?? 'INTERNAL', reply.error));
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(new TernError('TRY_AGAIN_LATER', `cannot reach the speaker at ${path}: ${e.message}`, { cause: e }));
    });
  });
}
