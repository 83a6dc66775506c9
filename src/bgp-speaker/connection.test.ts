/**
 * Connection reads a burst a slice per event-loop turn: a peer that sends a full
 * table faster than we decode it must not keep the loop (the RIB flush, the
 * kernel writer's sends and ACKs) waiting until the whole table is decoded.
 * Over a Unix socket pair in a temporary directory: no network.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Connection, READ_SLICE } from './connection';
import { buildAnnouncements, IPV4_UNICAST, type Message } from './codec';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A connected pair: the server side writes, the client side is wrapped in a Connection. */
async function pair(): Promise<{ server: net.Socket; client: net.Socket }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-conn-'));
  const sock = path.join(dir, 's');
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(sock, r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect(sock);
  const server = await accepted;
  cleanups.push(() => {
    client.destroy();
    server.destroy();
    srv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { server, client };
}

describe('Connection', () => {
  it('decodes a burst at most about READ_SLICE octets per event-loop turn, all of it, in order, reading on meanwhile', async () => {
    const o = { as4: true };
    const nlri = Array.from({ length: 40_000 }, (_, i) => ({ prefix: `10.${(i >> 10) & 255}.${(i >> 2) & 255}.${(i & 3) * 64}/26` }));
    const wire = Buffer.concat(buildAnnouncements(IPV4_UNICAST, { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '198.18.1.1' }, nlri, o));
    expect(wire.length).toBeGreaterThan(8 * READ_SLICE);
    const { server, client } = await pair();
    server.write(wire); // more than the socket buffers: the rest follows as the client reads
    await new Promise((r) => setTimeout(r, 50));

    // Reading goes on while decoding waits (a full socket makes a fast sender such as BIRD pace itself).
    let pauses = 0;
    const pause = client.pause.bind(client);
    client.pause = () => (pauses++, pause());
    // Octets of messages handled per turn of the loop, as counted by a setImmediate ticker.
    let turn = 0;
    const perTurn: number[] = [0];
    const got: string[] = [];
    let done = false;
    const tick = () => {
      turn++;
      perTurn[turn] = 0;
      if (!done) setImmediate(tick);
    };
    setImmediate(tick);
    await new Promise<void>((resolve, reject) => {
      const c = new Connection(client, false, {
        message: (m: Message) => {
          if (m.type !== 2) return reject(new Error(`message type ${m.type}`));
          perTurn[turn] += 19 + 4 + m.nlri.length * 5 + 4 + 25; // near enough: header, lengths, NLRI, attributes
          for (const n of m.nlri) got.push(n.prefix);
          if (got.length === nlri.length) resolve();
        },
        error: reject,
        closed: () => undefined,
      });
      c.receive = o;
    });
    done = true;
    expect(got).toEqual(nlri.map((n) => n.prefix));
    // A slice in the poll phase and its continuation in the same turn's check phase, each
    // ending with the message that crossed READ_SLICE (at most 4096 octets).
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(2 * (READ_SLICE + 4096));
    expect(pauses).toBe(0);
    expect(perTurn.filter((n) => n > 0).length).toBeGreaterThanOrEqual(Math.floor(wire.length / (2 * (READ_SLICE + 4096))));
  });
});
