/**
 * Batched, pipelined route writes on a raw rtnetlink socket: hundreds of
 * messages per sendmsg, several batches in flight. The generic request path
 * of the netlink package costs ~0.3 ms a route; this is what a 100k-route
 * FIB needs. Only the last message of a batch asks for an ACK: the kernel
 * answers every failed message with an error anyway, in order, so the last
 * ACK means the whole batch is done.
 */
import { RawNetlinkSocket } from 'netlink';
import { ENOENT, ESRCH, NETLINK_ROUTE, NLMSG_ERROR, routeMessageBound, writeRouteMessage, type WireRoute } from './route-codec';

export interface RouteWrite {
  route: WireRoute;
  /** RTM_DELROUTE instead of a create-or-replace. */
  del: boolean;
  /** Names the route in failures. */
  label: string;
}

/** A write the kernel refused, with its errno. */
export interface RouteWriteFailure {
  label: string;
  errno: number;
}

interface Batch {
  writes: RouteWrite[];
  firstSeq: number;
  failures: RouteWriteFailure[];
  done: () => void;
}

export class RouteWriter {
  private readonly raw: RawNetlinkSocket;
  private seq = 1;
  private readonly inFlight = new Map<number, Batch>();

  constructor(
    private readonly batchSize = 512,
    private readonly window = 8,
  ) {
    // Replies are peeked for their size: without peeking every reply, mostly a 36-octet
    // ACK, got a zeroed buffer of the full receive size (64 KiB) held until the next GC.
    this.raw = new RawNetlinkSocket(NETLINK_ROUTE, { recvBufferSize: 8 << 20, sendBufferSize: 8 << 20, messagePeeking: true });
    this.raw.on('message', (b) => this.receive(b));
  }

  close(): void {
    this.raw.close();
  }

  /**
   * Write all, in order; returns each write the kernel refused (a delete of a
   * missing route is done). Writes are taken from `writes` one batch at a time,
   * so a lazy iterable keeps only the batches in flight in memory, not a
   * whole table's worth of route objects.
   */
  async write(writes: Iterable<RouteWrite>): Promise<RouteWriteFailure[]> {
    const failures: RouteWriteFailure[] = [];
    const running = new Set<Promise<void>>();
    const start = async (batch: RouteWrite[]) => {
      while (running.size >= this.window) await Promise.race(running);
      const p = this.send(batch, failures);
      running.add(p);
      void p.finally(() => running.delete(p));
    };
    let batch: RouteWrite[] = [];
    for (const w of writes) {
      batch.push(w);
      if (batch.length < this.batchSize) continue;
      await start(batch);
      batch = [];
    }
    if (batch.length) await start(batch);
    await Promise.all(running);
    return failures;
  }

  private send(writes: RouteWrite[], failures: RouteWriteFailure[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const firstSeq = this.seq;
      this.seq += writes.length;
      const last = firstSeq + writes.length - 1;
      this.inFlight.set(last, { writes, firstSeq, failures, done: resolve });
      // The whole batch is written into one buffer: no per-route buffers to allocate and collect.
      let size = 0;
      for (const w of writes) size += routeMessageBound(w.route);
      const b = Buffer.allocUnsafe(size);
      let off = 0;
      for (let i = 0; i < writes.length; i++) off = writeRouteMessage(b, off, writes[i].route, writes[i].del, firstSeq + i, firstSeq + i === last);
      this.raw.send(b.subarray(0, off), {}, (err) => {
        if (!err) return;
        this.inFlight.delete(last);
        reject(err);
      });
    });
  }

  /** The in-flight batch a sequence number belongs to (batches are keyed by their last sequence number). */
  private batchOf(seq: number): Batch | undefined {
    for (const [last, b] of this.inFlight) if (seq >= b.firstSeq && seq <= last) return b;
    return undefined;
  }

  private receive(b: Buffer): void {
    let off = 0;
    while (off + 16 <= b.length) {
      const len = b.readUInt32LE(off);
      if (len < 16) break;
      if (b.readUInt16LE(off + 4) === NLMSG_ERROR && len >= 20) {
        const seq = b.readUInt32LE(off + 8);
        const err = -b.readInt32LE(off + 16);
        const batch = this.batchOf(seq);
        if (batch) {
          const w = batch.writes[seq - batch.firstSeq];
          if (err !== 0 && !(w.del && (err === ENOENT || err === ESRCH))) batch.failures.push({ label: w.label, errno: err });
          if (seq === batch.firstSeq + batch.writes.length - 1) {
            this.inFlight.delete(seq);
            batch.done();
          }
        }
      }
      off += (len + 3) & ~3;
    }
  }
}
