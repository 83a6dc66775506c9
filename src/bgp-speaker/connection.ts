/** One TCP connection carrying BGP: framing, decoding with the current options, writing. */
import type { Socket } from 'node:net';
import { decodeMessage, encodeMessage, frameLength, type CodecOptions, type Message } from './codec';

export interface ConnectionHandlers {
  message(m: Message, c: Connection): void;
  /** A decode error (BgpProtocolError) or any other failure while reading. */
  error(e: unknown, c: Connection): void;
  closed(c: Connection): void;
}

export class Connection {
  receive: CodecOptions = { as4: false };
  send: CodecOptions = { as4: false };
  private buf: Buffer = Buffer.alloc(0);
  private dead = false;
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
    let off = 0;
    try {
      while (!this.dead) {
        const len = frameLength(this.buf, off, this.receive);
        if (len === 0) break;
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
  }

  write(m: Message | Buffer): void {
    if (this.dead) return;
    this.socket.write(Buffer.isBuffer(m) ? m : encodeMessage(m, this.send));
  }

  writeMany(bufs: Buffer[]): void {
    if (this.dead || bufs.length === 0) return;
    this.socket.cork();
    for (const b of bufs) this.socket.write(b);
    process.nextTick(() => this.socket.uncork());
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
