/**
 * Single-hop BFD over UDP (RFC 5881): the pure sessions of fsm.ts with
 * sockets and timers. Control packets go to port 3784 from a source port in
 * 49152-65535 with TTL 255; received ones are demultiplexed by Your
 * Discriminator, or by source address while the peer does not know ours yet.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { randomInt } from 'node:crypto';
import type { Logger } from '../../lib/log';
import { messageOf } from '../../lib/errors';
import { BFD_PORT, BFD_STATE_NAME, BfdDecodeError, BfdState, decodeBfd, encodeBfd } from './packet';
import { adminDown, createBfd, detectionExpired, detectionTime, jitter, packetOf, receive, txInterval, type BfdConfig, type BfdSession, type BfdStep } from './fsm';

export interface BfdStatus {
  state: string;
  remoteState: string;
  diag: number;
  /** Milliseconds actually used, once negotiated. */
  txInterval?: number;
  detectionTime?: number;
  since: string;
  /** Times the session went down after being up. */
  downs: number;
}

interface Entry {
  address: string;
  s: BfdSession;
  tx: dgram.Socket;
  txTimer?: NodeJS.Timeout;
  detectTimer?: NodeJS.Timeout;
  since: number;
  downs: number;
  onChange(up: boolean): void;
}

/** Socket options from the native addon (TTL 255 on send, and the lowest TTL accepted: GTSM, RFC 5881 §5). */
export interface BfdSocketOptions {
  setTtl(fd: number, ttl: number, minTtl: number): void;
}

const fdOf = (s: dgram.Socket): number | undefined => (s as unknown as { _handle?: { fd?: number } })._handle?.fd;

export class Bfd {
  private readonly byAddress = new Map<string, Entry>();
  private readonly byDisc = new Map<number, Entry>();
  private rx4?: dgram.Socket;
  private rx6?: dgram.Socket;

  constructor(
    private readonly log: Logger,
    private readonly sockopts?: BfdSocketOptions,
    private readonly port = BFD_PORT,
  ) {}

  /** Run a session with a directly connected peer; `onChange` hears up and down. */
  async add(address: string, cfg: BfdConfig, onChange: (up: boolean) => void, localAddress?: string): Promise<void> {
    if (this.byAddress.has(address)) return;
    const v6 = net.isIPv6(address);
    await this.listen(v6);
    let disc: number;
    do disc = randomInt(1, 2 ** 32 - 1);
    while (this.byDisc.has(disc));
    const tx = await this.txSocket(v6, localAddress);
    const e: Entry = { address, s: createBfd(cfg, disc), tx, since: Date.now(), downs: 0, onChange };
    this.byAddress.set(address, e);
    this.byDisc.set(disc, e);
    this.schedule(e);
  }

  /** Stop a session, telling the peer AdminDown so it does not take it for a failure. */
  remove(address: string): void {
    const e = this.byAddress.get(address);
    if (!e) return;
    this.byAddress.delete(address);
    this.byDisc.delete(e.s.localDisc);
    clearTimeout(e.txTimer);
    clearTimeout(e.detectTimer);
    e.s = adminDown(e.s);
    e.tx.send(encodeBfd(packetOf(e.s, false)), this.port, e.address, () => e.tx.close());
  }

  status(address: string): BfdStatus | undefined {
    const e = this.byAddress.get(address);
    if (!e) return undefined;
    return {
      state: BFD_STATE_NAME[e.s.state],
      remoteState: BFD_STATE_NAME[e.s.remoteState],
      diag: e.s.diag,
      txInterval: e.s.state === BfdState.UP ? txInterval(e.s) : undefined,
      detectionTime: e.s.state === BfdState.UP ? detectionTime(e.s) : undefined,
      since: new Date(e.since).toISOString(),
      downs: e.downs,
    };
  }

  close(): void {
    for (const a of [...this.byAddress.keys()]) this.remove(a);
    this.rx4?.close();
    this.rx6?.close();
    this.rx4 = this.rx6 = undefined;
  }

  private async listen(v6: boolean): Promise<void> {
    if (v6 ? this.rx6 : this.rx4) return;
    const sock = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, reuseAddr: true });
    sock.on('message', (b, rinfo) => this.onPacket(b, rinfo.address));
    sock.on('error', (err) => this.log.error({ err: messageOf(err) }, 'BFD socket error'));
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ port: this.port, address: v6 ? '::' : '0.0.0.0' }, () => resolve());
    });
    this.gtsm(sock, 255);
    if (v6) this.rx6 = sock;
    else this.rx4 = sock;
  }

  /** TTL 255 out and, where the kernel takes it for UDP, nothing below 255 in (RFC 5881 §5). */
  private gtsm(sock: dgram.Socket, ttl: number): void {
    const fd = fdOf(sock);
    try {
      if (this.sockopts && fd !== undefined && fd >= 0) this.sockopts.setTtl(fd, ttl, 255);
      else sock.setTTL(ttl);
    } catch {
      sock.setTTL(ttl);
    }
  }

  /** A sending socket on a free source port in 49152-65535 (RFC 5881 §4). */
  private async txSocket(v6: boolean, localAddress?: string): Promise<dgram.Socket> {
    for (let i = 0; ; i++) {
      const sock = dgram.createSocket(v6 ? 'udp6' : 'udp4');
      try {
        await new Promise<void>((resolve, reject) => {
          sock.once('error', reject);
          sock.bind({ port: randomInt(49152, 65536), address: localAddress }, () => resolve());
        });
        sock.on('error', (err) => this.log.warn({ err: messageOf(err) }, 'BFD send failed'));
        this.gtsm(sock, 255);
        return sock;
      } catch (err) {
        sock.close();
        if (i > 20) throw err;
      }
    }
  }

  private onPacket(b: Buffer, from: string): void {
    let p;
    try {
      p = decodeBfd(b);
    } catch (err) {
      if (err instanceof BfdDecodeError) this.log.debug({ from, err: err.message }, 'BFD packet discarded');
      return;
    }
    const addr = from.replace(/^::ffff:/, '');
    const e = p.yourDisc ? this.byDisc.get(p.yourDisc) : this.byAddress.get(addr);
    if (!e || e.address !== addr) return; // §6.8.6: no session for it
    this.apply(e, receive(e.s, p));
    // Any packet from the peer restarts the detection timer.
    clearTimeout(e.detectTimer);
    const dt = detectionTime(e.s);
    if (dt !== undefined && (e.s.state === BfdState.INIT || e.s.state === BfdState.UP)) e.detectTimer = setTimeout(() => this.apply(e, detectionExpired(e.s)), dt);
  }

  private apply(e: Entry, r: BfdStep): void {
    const before = e.s.state;
    e.s = r.s;
    if (e.s.state !== before) {
      e.since = Date.now();
      this.log.info({ peer: e.address, from: BFD_STATE_NAME[before], to: BFD_STATE_NAME[e.s.state], diag: e.s.diag }, 'BFD state change');
    }
    if (r.send) this.send(e, r.send.final);
    if (r.event === 'down') e.downs++;
    if (r.event) e.onChange(r.event === 'up');
    if (e.s.state !== before) this.schedule(e); // the interval follows the state
  }

  private send(e: Entry, final: boolean): void {
    if (!this.byAddress.has(e.address)) return;
    e.tx.send(encodeBfd(packetOf(e.s, final)), this.port, e.address);
  }

  /** Periodic transmission at the negotiated interval, jittered (§6.8.7). */
  private schedule(e: Entry): void {
    clearTimeout(e.txTimer);
    const tick = () => {
      const iv = txInterval(e.s);
      if (iv !== undefined) this.send(e, false);
      e.txTimer = setTimeout(tick, jitter(iv ?? 1000, e.s.cfg.multiplier, Math.random()));
    };
    e.txTimer = setTimeout(tick, e.s.state === BfdState.UP ? 0 : jitter(txInterval(e.s) ?? 1000, e.s.cfg.multiplier, Math.random()) / 10);
  }
}
