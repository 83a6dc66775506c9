/**
 * Batched, pipelined route writes on a raw rtnetlink socket: hundreds of
 * messages per sendmsg, several batches in flight. The generic request path
 * of the netlink package costs ~0.3 ms a route; this is what a 100k-route
 * FIB needs. Only the last message of a batch asks for an ACK: the kernel
 * answers every failed message with an error anyway, in order, so the last
 * ACK means the whole batch is done.
 */
import { RawNetlinkSocket } from 'netlink';
import { ENOENT, ESRCH, NETLINK_ROUTE, NLM_F_ACK, NLMSG_ERROR, routeMessageBound, writeRouteMessage, type WireRoute } from './route-codec';

export interface RouteWrite {
  route: WireRoute;
  /** RTM_DELROUTE instead of a create-or-replace. */
  del: boolean;
  /** Names the route in failures. */
  label: string | number;
}

/** A write the kernel refused, with its errno. */
export interface RouteWriteFailure {
  label: string | number;
  errno: number;
}

interface Batch {
  /** Per message of the batch, from firstSeq on: its label, and whether it was a delete. */
  labels: (string | number)[];
  dels: boolean[];
  firstSeq: number;
  failures: RouteWriteFailure[];
  done: () => void;
}

/** Bytes of one batch being encoded (grown when a message does not fit). */
interface Pending {
  buf: Buffer;
  off: number;
  /** Offset of the last message, which gets the ACK flag when the batch is closed. */
  lastOff: number;
  labels: (string | number)[];
  dels: boolean[];
  firstSeq: number;
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
   * missing route is done). Each write is encoded as it is taken from
   * `writes`, and only its label and the batch's bytes are kept while the
   * batch is in flight: a lazy iterable may hand out one object over and over,
   * and no route objects outlive the loop that made them. `dryRun`: encode, send nothing.
   */
  async write(writes: Iterable<RouteWrite>, opts: { dryRun?: boolean } = {}): Promise<RouteWriteFailure[]> {
    const failures: RouteWriteFailure[] = [];
    const running = new Set<Promise<void>>();
    const start = async (p: Pending) => {
      // A rehearsal (the BGP speaker's JIT warm-up): encoded like any batch, never sent.
      if (opts.dryRun) return;
      while (running.size >= this.window) await Promise.race(running);
      const sent = this.send(p, failures);
      running.add(sent);
      void sent.finally(() => running.delete(sent));
    };
    let p: Pending | undefined;
    for (const w of writes) {
      const bound = routeMessageBound(w.route);
      if (!p) p = { buf: Buffer.allocUnsafe(bound * this.batchSize), off: 0, lastOff: 0, labels: [], dels: [], firstSeq: this.seq };
      else if (p.off + bound > p.buf.length) {
        const bigger = Buffer.allocUnsafe(Math.max(p.buf.length * 2, p.off + bound));
        p.buf.copy(bigger, 0, 0, p.off);
        p.buf = bigger;
      }
      p.lastOff = p.off;
      p.off = writeRouteMessage(p.buf, p.off, w.route, w.del, this.seq++, false);
      p.labels.push(w.label);
      p.dels.push(w.del);
      if (p.labels.length < this.batchSize) continue;
      await start(p);
      p = undefined;
    }
    if (p) await start(p);
    await Promise.all(running);
    return failures;
  }

  private send(p: Pending, failures: RouteWriteFailure[]): Promise<void> {
    return new Promise((resolve, reject) => {
      // Only the last message asks for an ACK (see the top of the file).
      p.buf.writeUInt16LE(p.buf.readUInt16LE(p.lastOff + 6) | NLM_F_ACK, p.lastOff + 6);
      const last = p.firstSeq + p.labels.length - 1;
      this.inFlight.set(last, { labels: p.labels, dels: p.dels, firstSeq: p.firstSeq, failures, done: resolve });
      this.raw.send(p.buf.subarray(0, p.off), {}, (err) => {
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
          const i = seq - batch.firstSeq;
          if (err !== 0 && !(batch.dels[i] && (err === ENOENT || err === ESRCH))) batch.failures.push({ label: batch.labels[i], errno: err });
          if (i === batch.labels.length - 1) {
            this.inFlight.delete(seq);
            batch.done();
          }
        }
      }
      off += (len + 3) & ~3;
    }
  }
}
