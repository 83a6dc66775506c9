/** One TCP connection carrying BGP: framing, decoding with the current options, writing. */
import type { Socket } from 'node:net';
import { MsgType } from './codec/constants';
import { decodeMessage, encodeMessage, frameLength, type CodecOptions, type Message } from './codec';

export interface ConnectionHandlers {
  message(m: Message, c: Connection): void;
  /** A decode error (BgpProtocolError) or any other failure while reading. */
  error(e: unknown, c: Connection): void;
  closed(c: Connection): void;
}

/** Octets of received messages decoded per event-loop turn (about 3,000 IPv4 /26 routes). */
export const READ_SLICE = 16 << 10;
/**
 * Received octets held undecoded before reading pauses and TCP slows the peer down. Reading
 * on while decoding a slice at a time keeps a fast sender's socket from filling (BIRD 2.0
 * seems to pace its export then: 3 s for 100k routes instead of 0.5 s). A full table of
 * IPv4 /26s is about 500 KiB on the wire.
 */
const READ_BACKLOG = 4 << 20;

/** Octets handed to the socket before waiting for it to drain. */
const OUT_WINDOW = 256 << 10;

export class Connection {
  receive: CodecOptions = { as4: false };
  send: CodecOptions = { as4: false };
  private buf: Buffer = Buffer.alloc(0);
  private dead = false;
  /** Decoding stopped for this event-loop turn (READ_SLICE spent); it goes on in a setImmediate. */
  private yielding = false;
  /**
   * Messages waiting for the socket, in order. UPDATEs come as iterators that
   * encode on demand, so a full table is never encoded all at once.
   */
  private readonly queue: (Buffer | Iterator<Buffer>)[] = [];
  /** The peer's OPEN on this connection, once seen. */
  remoteOpen?: Extract<Message, { type: 1 }>;

  constructor(
    readonly socket: Socket,
    readonly incoming: boolean,
    private readonly h: ConnectionHandlers,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
  }

  get alive(): boolean {
    return !this.dead;
  }

  private onData(d: Buffer): void {
    if (this.dead) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (this.buf.length >= READ_BACKLOG) this.socket.pause();
    if (!this.yielding) this.decode();
  }

  /**
   * Decode what is buffered, at most READ_SLICE octets of messages per event-loop turn, the
   * rest in the next turn: the RIB flush and the kernel writer's sends and ACKs run between
   * slices instead of after a whole table read in one poll phase.
   */
  private decode(): void {
    let off = 0;
    try {
      while (!this.dead) {
        const len = frameLength(this.buf, off, this.receive);
        if (len === 0) break;
        if (off >= READ_SLICE) {
          this.yielding = true;
          setImmediate(() => {
            this.yielding = false;
            if (!this.dead) this.decode();
          });
          break;
        }
        // Decode from a slice of the socket's (pooled) buffer.
        const m = decodeMessage(this.buf.subarray(off, off + len), this.receive);
        off += len;
        this.h.message(m, this);
      }
    } catch (e) {
      this.h.error(e, this);
      return;
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
    if (!this.dead && this.buf.length < READ_BACKLOG && this.socket.isPaused()) this.socket.resume();
  }

  write(m: Message | Buffer): void {
    if (this.dead) return;
    if (!Buffer.isBuffer(m) && m.type === MsgType.NOTIFICATION) {
      // A NOTIFICATION ends the session: it goes out now, and nothing queued after it.
      this.queue.length = 0;
      this.socket.write(encodeMessage(m, this.send));
      return;
    }
    this.enqueue(Buffer.isBuffer(m) ? m : encodeMessage(m, this.send));
  }

  /** Queue messages produced on demand, as the socket takes them (after anything queued before). */
  writeMany(bufs: Iterable<Buffer>): void {
    if (this.dead) return;
    this.enqueue(bufs[Symbol.iterator]());
  }

  private enqueue(item: Buffer | Iterator<Buffer>): void {
    this.queue.push(item);
    if (this.queue.length === 1) this.pump();
  }

  /** Write queued messages until the socket holds OUT_WINDOW octets, then wait for 'drain'. */
  private pump(): void {
    if (this.dead || !this.queue.length) return;
    this.socket.cork();
    try {
      while (this.queue.length && !this.dead) {
        if (this.socket.writableLength >= OUT_WINDOW) {
          this.socket.once('drain', () => this.pump());
          return;
        }
        const head = this.queue[0];
        if (Buffer.isBuffer(head)) {
          this.queue.shift();
          this.socket.write(head);
          continue;
        }
        const r = head.next();
        if (r.done) this.queue.shift();
        else this.socket.write(r.value);
      }
    } finally {
      process.nextTick(() => this.socket.uncork());
    }
  }

  /** Flush what is queued, then close. */
  end(): void {
    if (this.dead) return;
    this.dead = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.h.closed(this);
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    this.socket.destroy();
    this.h.closed(this);
  }
}
