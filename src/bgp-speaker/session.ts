/**
 * One peer: the pure FSM driven by sockets and timers. Maps decode errors to
 * NOTIFICATIONs (the only place that does), resolves connection collisions
 * (§6.8), and hands route changes to the speaker.
 */
import * as net from 'node:net';
import type { Logger } from '../lib/log';
import { messageOf } from '../lib/errors';
import {
  buildOpen, negotiate, receiveOptions, sendOptions, peerAsOf, isBgpProtocolError, interpretUpdate, encodeMessage, endOfRib,
  NotifyCode, OpenSubcode, CeaseSubcode, addrToBytes, type Message, type Negotiated, type OpenMessage, type UpdateChanges,
} from './codec';
import { createFsm, step, resolveCollision, type Fsm, type FsmEvent, type TimerName } from './fsm';
import { Connection } from './connection';

export interface SessionConfig {
  address: string;
  port: number;
  asn: number;
  localAsn: number;
  routerId: string;
  localAddress?: string;
  passive: boolean;
  holdTime: number;
  connectRetryTime: number;
  idleHoldTime: number;
  families: number[];
  /** Advertise graceful restart with this restart time (seconds). */
  gracefulRestart?: { restartTime: number };
  /** Set the Restart State bit in our OPEN (we are coming back from a restart). */
  restarting?: boolean;
  /** TCP MD5 key (RFC 2385); needs socket options. */
  password?: string;
  /** TTL we send with, and the lowest we accept (GTSM, RFC 5082); needs socket options. */
  ttl?: { ttl: number; minTtl: number };
}

/** Socket options Node lacks (TCP MD5, TTL), from the native addon, injected so the BGP core needs no native code. */
export interface BgpSocketOptions {
  /** An unconnected TCP socket, so options are in place before the SYN. */
  socket(family: 4 | 6): number;
  /** Set (or, with an empty key, remove) the MD5 key for one peer address on a socket. */
  setKey(fd: number, address: string, key: string): void;
  setTtl(fd: number, ttl: number, minTtl: number): void;
}

const fdOf = (socket: net.Socket): number | undefined => (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;

export interface SessionEvents {
  established(s: Session): void;
  down(s: Session, reason: string, graceful: boolean): void;
  update(s: Session, changes: UpdateChanges, action: string): void;
  routeRefresh(s: Session): void;
}

export interface SessionStatus {
  address: string;
  asn: number;
  state: string;
  since: number;
  routerId?: string;
  holdTime?: number;
  lastError?: string;
  families: number[];
}

/** Whether `mine` sorts above `theirs` (both as sent by the socket, possibly v4-mapped). */
function higherAddress(mine: string | undefined, theirs: string | undefined): boolean {
  if (!mine || !theirs) return false;
  try {
    const a = addrToBytes(mine.replace(/^::ffff:/, ''));
    const b = addrToBytes(theirs.replace(/^::ffff:/, ''));
    return a.length === b.length && Buffer.compare(a, b) > 0;
  } catch {
    return false;
  }
}

const TIMER_EVENT: Record<TimerName, FsmEvent['type']> = {
  connectRetry: 'ConnectRetryTimerExpires',
  hold: 'HoldTimerExpires',
  keepalive: 'KeepaliveTimerExpires',
  idleHold: 'IdleHoldTimerExpires',
};

export class Session {
  fsm: Fsm;
  conn?: Connection;
  /** An incoming connection waiting for its OPEN during a collision. */
  private rival?: Connection;
  negotiated?: Negotiated;
  private readonly timers = new Map<TimerName, NodeJS.Timeout>();
  private sinceMs = Date.now();
  lastError?: string;
  private readonly localOpen: OpenMessage;

  constructor(
    readonly cfg: SessionConfig,
    private readonly ev: SessionEvents,
    private readonly log: Logger,
    private readonly sockopts?: BgpSocketOptions,
  ) {
    this.fsm = createFsm({ holdTime: cfg.holdTime, connectRetryTime: cfg.connectRetryTime, passive: cfg.passive, idleHoldTime: cfg.idleHoldTime });
    this.localOpen = buildOpen({
      asn: cfg.localAsn,
      routerId: cfg.routerId,
      holdTime: cfg.holdTime,
      families: cfg.families,
      gracefulRestart: cfg.gracefulRestart && { restartTime: cfg.gracefulRestart.restartTime, restarting: !!cfg.restarting, forwardingPreserved: true },
      addPathReceive: true,
    });
  }

  get ibgp(): boolean {
    return this.cfg.asn === this.cfg.localAsn;
  }

  status(): SessionStatus {
    return {
      address: this.cfg.address,
      asn: this.cfg.asn,
      state: this.fsm.state,
      since: this.sinceMs,
      routerId: this.conn?.remoteOpen?.routerId,
      holdTime: this.fsm.state === 'Established' ? this.fsm.holdTime : undefined,
      lastError: this.lastError,
      families: this.negotiated ? [...this.negotiated.families] : [],
    };
  }

  start(): void {
    this.dispatch({ type: 'ManualStart' });
  }

  /** Stop: with `graceful`, drop TCP without a NOTIFICATION so the peer keeps our routes (RFC 4724). */
  stop(graceful = false): void {
    if (graceful) {
      this.conn?.destroy();
      this.rival?.destroy();
      this.fsm = { ...this.fsm, state: 'Idle', stopped: true };
      for (const t of this.timers.values()) clearTimeout(t);
      this.timers.clear();
      return;
    }
    this.dispatch({ type: 'ManualStop' });
    this.rival?.destroy();
  }

  /** An accepted socket from this peer's address. */
  accept(socket: net.Socket): void {
    const fd = fdOf(socket);
    // The SYN-ACK already left with the listener's TTL; everything after uses the peer's.
    if (this.cfg.ttl && this.sockopts && fd !== undefined && fd >= 0) this.sockopts.setTtl(fd, this.cfg.ttl.ttl, this.cfg.ttl.minTtl);
    const c = this.makeConnection(socket, true);
    if (this.fsm.state === 'Idle' && !this.fsm.stopped) this.dispatch({ type: 'ManualStart' }); // waiting out a backoff
    const s = this.fsm.state;
    if (this.fsm.stopped || s === 'Established' || this.rival) {
      // §6.8: a new connection while Established loses; so does one while stopped.
      c.write({ type: 3, code: NotifyCode.CEASE, subcode: CeaseSubcode.CONNECTION_COLLISION_RESOLUTION, data: Buffer.alloc(0) });
      c.end();
      return;
    }
    if (s === 'Connect' && this.conn && higherAddress(socket.localAddress, socket.remoteAddress)) {
      // Both sides are dialing and no OPEN has told us the peer's identifier yet. Without a
      // shared rule each side would drop its own attempt and adopt the other's, killing both;
      // so both keep the connection dialed by the higher address.
      c.write({ type: 3, code: NotifyCode.CEASE, subcode: CeaseSubcode.CONNECTION_COLLISION_RESOLUTION, data: Buffer.alloc(0) });
      c.end();
      return;
    }
    if (s === 'Connect' || s === 'Active') {
      // Not connected yet: drop our own attempt and take this one.
      if (this.conn) this.conn.destroy();
      this.conn = c;
      this.dispatch({ type: 'TcpConnectionConfirmed' });
      return;
    }
    // OpenSent/OpenConfirm: both connections live until the rival's OPEN tells us the peer's identifier.
    this.rival = c;
    c.write(this.localOpen);
  }

  /** End the session with a NOTIFICATION (e.g. Cease/1 when max-prefix is exceeded). */
  fail(code: number, subcode: number, reason: string): void {
    this.lastError = `sent NOTIFICATION ${code}/${subcode}: ${reason}`;
    this.dispatch({ type: 'MsgErr', code, subcode });
  }

  /** Queue UPDATEs; they may be encoded lazily, as the socket drains. */
  sendUpdates(bufs: Iterable<Buffer>): void {
    if (this.fsm.state !== 'Established' || !this.conn) return;
    this.conn.writeMany(bufs);
  }

  sendEndOfRib(): void {
    if (this.fsm.state !== 'Established' || !this.conn || !this.negotiated) return;
    for (const f of this.negotiated.families) this.conn.write(encodeMessage(endOfRib(f >> 8, f & 0xff), this.conn.send));
  }

  private makeConnection(socket: net.Socket, incoming: boolean): Connection {
    return new Connection(socket, incoming, {
      message: (m, c) => this.onMessage(m, c),
      error: (e, c) => this.onError(e, c),
      closed: (c) => this.onClosed(c),
    });
  }

  private connect(): void {
    const socket = this.cfg.password || this.cfg.ttl ? this.optionedSocket() : new net.Socket();
    socket.connect({ host: this.cfg.address, port: this.cfg.port, localAddress: this.cfg.localAddress });
    const c = this.makeConnection(socket, false);
    this.conn = c;
    socket.once('connect', () => {
      if (this.conn === c) this.dispatch({ type: 'TcpCRAcked' });
    });
  }

  /** A socket whose SYN already carries our options: created by the addon, keyed and TTL'd, then handed to Node to connect. */
  private optionedSocket(): net.Socket {
    const o = this.sockopts!; // the speaker refuses such peers without it
    const fd = o.socket(net.isIPv6(this.cfg.address) ? 6 : 4);
    if (this.cfg.password) o.setKey(fd, this.cfg.address, this.cfg.password);
    if (this.cfg.ttl) o.setTtl(fd, this.cfg.ttl.ttl, this.cfg.ttl.minTtl);
    return new net.Socket({ fd, readable: true, writable: true });
  }

  private onClosed(c: Connection): void {
    if (c === this.rival) this.rival = undefined;
    if (c === this.conn) {
      this.conn = undefined;
      if (this.fsm.state !== 'Idle') this.dispatch({ type: 'TcpConnectionFails' });
    }
  }

  private onError(e: unknown, c: Connection): void {
    if (isBgpProtocolError(e)) {
      this.log.warn({ err: e.message, code: e.notifyCode, subcode: e.notifySubcode }, 'protocol error');
      if (c !== this.conn) {
        c.write({ type: 3, code: e.notifyCode, subcode: e.notifySubcode, data: e.data });
        c.end();
        return;
      }
      this.lastError = `sent NOTIFICATION ${e.notifyCode}/${e.notifySubcode}: ${e.message}`;
      this.dispatch({ type: 'MsgErr', code: e.notifyCode, subcode: e.notifySubcode, data: e.data });
    } else {
      this.log.error({ err: messageOf(e) }, 'session failure');
      this.lastError = messageOf(e);
      if (c === this.conn) this.dispatch({ type: 'MsgErr', code: NotifyCode.CEASE, subcode: CeaseSubcode.OUT_OF_RESOURCES });
      else c.destroy();
    }
  }

  /** Check an OPEN against the configuration; returns a NOTIFICATION event when it is unacceptable. */
  private checkOpen(o: OpenMessage): FsmEvent | undefined {
    if (peerAsOf(o) !== this.cfg.asn) return { type: 'MsgErr', code: NotifyCode.OPEN_MESSAGE_ERROR, subcode: OpenSubcode.BAD_PEER_AS };
    // RFC 6286 §2.2: the identifier need only be unique within an AS, so only an internal peer may not share ours.
    if (this.ibgp && o.routerId === this.cfg.routerId) return { type: 'MsgErr', code: NotifyCode.OPEN_MESSAGE_ERROR, subcode: OpenSubcode.BAD_BGP_IDENTIFIER };
    return undefined;
  }

  private onMessage(m: Message, c: Connection): void {
    if (c === this.rival) return this.onRivalMessage(m, c);
    if (c !== this.conn) return;
    switch (m.type) {
      case 1: {
        const bad = this.checkOpen(m);
        if (bad) {
          this.lastError = `sent NOTIFICATION 2/${(bad as { subcode: number }).subcode}: OPEN from AS ${peerAsOf(m)} id ${m.routerId}`;
          return this.dispatch(bad);
        }
        c.remoteOpen = m;
        this.negotiated = negotiate(this.localOpen, m);
        c.receive = { ...receiveOptions(this.negotiated), ebgp: !this.ibgp };
        c.send = sendOptions(this.negotiated);
        return this.dispatch({ type: 'BGPOpen', holdTime: this.negotiated.holdTime });
      }
      case 2: {
        this.dispatch({ type: 'UpdateMsg' });
        if (this.fsm.state !== 'Established') return;
        const changes = interpretUpdate(m, c.receive);
        if (m.action && m.action !== 'none') this.log.warn({ action: m.action, problems: m.problems }, 'malformed UPDATE handled per RFC 7606');
        this.ev.update(this, changes, m.action ?? 'none');
        return;
      }
      case 3:
        this.lastError = `received NOTIFICATION ${m.code}/${m.subcode}${m.data.length ? ` (${m.data.toString('hex')})` : ''}`;
        return this.dispatch({ type: 'NotifMsg' });
      case 4:
        return this.dispatch({ type: 'KeepAliveMsg' });
      case 5:
        if (this.fsm.state === 'Established' && m.subtype === 0) this.ev.routeRefresh(this);
        return;
    }
  }

  /** §6.8: once the rival's OPEN arrives, keep the connection initiated by the higher identifier. */
  private onRivalMessage(m: Message, c: Connection): void {
    if (m.type !== 1) {
      if (m.type === 3) c.destroy();
      return;
    }
    const bad = this.checkOpen(m);
    if (bad) {
      c.write({ type: 3, code: NotifyCode.OPEN_MESSAGE_ERROR, subcode: (bad as { subcode: number }).subcode, data: Buffer.alloc(0) });
      return c.end();
    }
    const keep = resolveCollision(this.cfg.routerId, m.routerId, this.cfg.localAsn, this.cfg.asn);
    const existingIsOutgoing = this.conn ? !this.conn.incoming : true;
    // An Established session always wins (§6.8); a stopped one takes nothing.
    const keepRival = this.fsm.state !== 'Established' && !this.fsm.stopped && (keep === 'keep-incoming' ? existingIsOutgoing : !existingIsOutgoing);
    if (!keepRival) {
      c.write({ type: 3, code: NotifyCode.CEASE, subcode: CeaseSubcode.CONNECTION_COLLISION_RESOLUTION, data: Buffer.alloc(0) });
      this.rival = undefined;
      return c.end();
    }
    // The rival wins: dump the existing connection and continue on the rival from OpenSent.
    const old = this.conn;
    this.rival = undefined;
    this.conn = c;
    old?.write({ type: 3, code: NotifyCode.CEASE, subcode: CeaseSubcode.CONNECTION_COLLISION_RESOLUTION, data: Buffer.alloc(0) });
    old?.end();
    this.dispatch({ type: 'CollisionAdopt' });
    this.onMessage(m, c);
  }

  private dispatch(e: FsmEvent): void {
    const before = this.fsm.state;
    const r = step(this.fsm, e);
    this.fsm = r.fsm;
    if (this.fsm.state !== before) {
      this.sinceMs = Date.now();
      this.log.info({ from: before, to: this.fsm.state, event: e.type }, 'state change');
    }
    for (const a of r.actions) {
      switch (a.type) {
        case 'connect':
          this.connect();
          break;
        case 'close': {
          const c = this.conn;
          this.conn = undefined;
          c?.end();
          break;
        }
        case 'sendOpen':
          this.conn?.write(this.localOpen);
          break;
        case 'sendKeepalive':
          this.conn?.write({ type: 4 });
          break;
        case 'sendNotification':
          if (!this.lastError?.startsWith(`sent NOTIFICATION ${a.code}/${a.subcode}`)) this.lastError = `sent NOTIFICATION ${a.code}/${a.subcode}${a.reason ? `: ${a.reason}` : ''}`;
          this.conn?.write({ type: 3, code: a.code, subcode: a.subcode, data: a.data ?? Buffer.alloc(0) });
          break;
        case 'startTimer': {
          clearTimeout(this.timers.get(a.timer));
          const t = setTimeout(() => {
            this.timers.delete(a.timer);
            this.dispatch({ type: TIMER_EVENT[a.timer] } as FsmEvent);
          }, a.seconds * 1000);
          this.timers.set(a.timer, t);
          break;
        }
        case 'stopTimer':
          clearTimeout(this.timers.get(a.timer));
          this.timers.delete(a.timer);
          break;
        case 'established':
          this.ev.established(this); // lastError stays visible, as in `birdc show protocols`
          break;
        case 'down': {
          // RFC 4724 §4.2: keep the peer's routes if it does graceful restart and the session
          // did not end with a NOTIFICATION from either side.
          const graceful = !!this.negotiated?.peerGracefulRestart && !!this.cfg.gracefulRestart && e.type !== 'NotifMsg' && e.type !== 'MsgErr' && e.type !== 'ManualStop';
          if (!this.lastError) this.lastError = a.reason;
          this.ev.down(this, a.reason, graceful);
          break;
        }
      }
    }
  }

  /** Our own local address on the live connection (for next-hop self). */
  localAddress(): string | undefined {
    return this.conn?.socket.localAddress?.replace(/^::ffff:/, '');
  }
}
