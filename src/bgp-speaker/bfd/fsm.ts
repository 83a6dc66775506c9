/**
 * One BFD session in asynchronous mode (RFC 5880 §6.2, §6.8), pure: a packet
 * or an expired detection timer in, the new session and what to do out. The
 * adapter owns sockets and timers; intervals here are microseconds, as on the wire.
 */
import { BfdDiag, BfdState, type BfdPacket, type BfdStateNum } from './packet';

export interface BfdConfig {
  /** Milliseconds, as in BIRD's `min rx interval` / `min tx interval`. */
  minRx: number;
  minTx: number;
  multiplier: number;
}

export interface BfdSession {
  readonly cfg: BfdConfig;
  readonly localDisc: number;
  remoteDisc: number;
  state: BfdStateNum;
  remoteState: BfdStateNum;
  diag: number;
  /** What we advertise now: at least 1 s until Up (§6.8.3). */
  desiredMinTx: number;
  requiredMinRx: number;
  remoteMinRx: number;
  remoteDesiredMinTx: number;
  remoteDetectMult: number;
  /** A Poll Sequence is running: P set until a packet with F arrives (§6.5). */
  polling: boolean;
}

export type BfdEvent = 'up' | 'down';

export interface BfdStep {
  s: BfdSession;
  /** Session went up or down. */
  event?: BfdEvent;
  /** Send a packet now, with F set when answering a Poll. */
  send?: { final: boolean };
}

const SLOW_TX = 1_000_000; // §6.8.3: not below one second while the session is not Up
const ms = (x: number) => Math.round(x * 1000);

export function createBfd(cfg: BfdConfig, localDisc: number): BfdSession {
  return {
    cfg,
    localDisc,
    remoteDisc: 0,
    state: BfdState.DOWN,
    remoteState: BfdState.DOWN,
    diag: BfdDiag.NONE,
    desiredMinTx: Math.max(SLOW_TX, ms(cfg.minTx)),
    requiredMinRx: ms(cfg.minRx),
    remoteMinRx: 1, // §6.8.1 initial value
    remoteDesiredMinTx: 0,
    remoteDetectMult: 0,
    polling: false,
  };
}

/** Enter a state; timers follow it (fast when Up, slow otherwise), and a change while Up is polled. */
function enter(s: BfdSession, state: BfdStateNum, diag?: number): BfdSession {
  const desiredMinTx = state === BfdState.UP ? ms(s.cfg.minTx) : Math.max(SLOW_TX, ms(s.cfg.minTx));
  const changed = desiredMinTx !== s.desiredMinTx;
  return { ...s, state, diag: diag ?? s.diag, desiredMinTx, polling: s.polling || (changed && state === BfdState.UP) };
}

/** §6.8.6: a received control packet (already checked by decodeBfd). */
export function receive(s0: BfdSession, p: BfdPacket): BfdStep {
  if (p.yourDisc !== 0 && p.yourDisc !== s0.localDisc) return { s: s0 }; // not ours
  if (s0.state === BfdState.ADMIN_DOWN) return { s: s0 };
  let s: BfdSession = {
    ...s0,
    remoteDisc: p.myDisc,
    remoteState: p.state,
    remoteMinRx: p.requiredMinRx,
    remoteDesiredMinTx: p.desiredMinTx,
    remoteDetectMult: p.detectMult,
    polling: s0.polling && !p.final,
  };
  let event: BfdEvent | undefined;
  if (p.state === BfdState.ADMIN_DOWN) {
    if (s.state !== BfdState.DOWN) {
      event = s.state === BfdState.UP ? 'down' : undefined;
      s = enter(s, BfdState.DOWN, BfdDiag.NEIGHBOR_DOWN);
    }
  } else if (s.state === BfdState.DOWN) {
    if (p.state === BfdState.DOWN) s = enter(s, BfdState.INIT);
    else if (p.state === BfdState.INIT) {
      s = enter(s, BfdState.UP, BfdDiag.NONE);
      event = 'up';
    }
  } else if (s.state === BfdState.INIT) {
    if (p.state === BfdState.INIT || p.state === BfdState.UP) {
      s = enter(s, BfdState.UP, BfdDiag.NONE);
      event = 'up';
    }
  } else if (p.state === BfdState.DOWN) {
    s = enter(s, BfdState.DOWN, BfdDiag.NEIGHBOR_DOWN);
    event = 'down';
  }
  // Answer a Poll at once with Final (§6.5); a state change goes out at once too, so the peer need not wait an interval.
  const send = p.poll ? { final: true } : s.state !== s0.state ? { final: false } : undefined;
  return { s, event, send };
}

/** The detection timer ran out (§6.8.4). */
export function detectionExpired(s: BfdSession): BfdStep {
  if (s.state !== BfdState.INIT && s.state !== BfdState.UP) return { s };
  const wasUp = s.state === BfdState.UP;
  return { s: { ...enter(s, BfdState.DOWN, BfdDiag.DETECT_EXPIRED), remoteDisc: 0, remoteState: BfdState.DOWN }, event: wasUp ? 'down' : undefined, send: { final: false } };
}

/** Milliseconds between our packets before jitter (§6.8.7), or undefined when we must not send (remote asked for 0). */
export function txInterval(s: BfdSession): number | undefined {
  if (s.remoteMinRx === 0) return undefined;
  return Math.max(s.desiredMinTx, s.remoteMinRx) / 1000;
}

/** The jittered wait before the next packet: 75-100 % of the interval, 75-90 % with a multiplier of 1. */
export function jitter(interval: number, multiplier: number, r: number): number {
  return interval * (0.75 + r * (multiplier === 1 ? 0.15 : 0.25));
}

/** Milliseconds without a packet before the session is declared down (§6.8.4), once the peer has spoken. */
export function detectionTime(s: BfdSession): number | undefined {
  if (!s.remoteDetectMult) return undefined;
  return (s.remoteDetectMult * Math.max(s.requiredMinRx, s.remoteDesiredMinTx)) / 1000;
}

export function packetOf(s: BfdSession, final: boolean): BfdPacket {
  return {
    diag: s.diag,
    state: s.state,
    poll: s.polling && !final,
    final,
    cpi: false,
    demand: false,
    detectMult: s.cfg.multiplier,
    myDisc: s.localDisc,
    yourDisc: s.remoteDisc,
    desiredMinTx: s.desiredMinTx,
    requiredMinRx: s.requiredMinRx,
    requiredMinEchoRx: 0,
  };
}

/** Taken down on purpose (peer removed): tell the other side AdminDown so it does not count it as a failure (§6.8.16). */
export function adminDown(s: BfdSession): BfdSession {
  return { ...s, state: BfdState.ADMIN_DOWN, diag: BfdDiag.ADMIN_DOWN };
}
