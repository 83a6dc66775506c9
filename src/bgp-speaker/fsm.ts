/**
 * The RFC 4271 §8 finite state machine, pure: `step(fsm, event)` returns the
 * next state and the actions the session performs (connect, send, timers,
 * close). Timers are named; the session owns the clocks.
 */
import { CeaseSubcode, FsmSubcode, NotifyCode } from './codec/constants';

export type FsmStateName = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';
export type TimerName = 'connectRetry' | 'hold' | 'keepalive' | 'idleHold';

export interface FsmConfig {
  /** Our proposed hold time (seconds); 0 disables keepalives. */
  holdTime: number;
  connectRetryTime: number;
  /** Passive peers never initiate a connection (§8.1.1 PassiveTcpEstablishment). */
  passive: boolean;
  /** First wait before an automatic restart after an error, doubled per consecutive failure (DampPeerOscillations). */
  idleHoldTime: number;
  maxIdleHoldTime: number;
}

export const DEFAULT_FSM_CONFIG: FsmConfig = { holdTime: 90, connectRetryTime: 120, passive: false, idleHoldTime: 5, maxIdleHoldTime: 120 };
/** §8.2.2: hold timer while waiting for the OPEN ("a large value", 4 minutes suggested). */
export const LARGE_HOLD_TIME = 240;

export interface Fsm {
  state: FsmStateName;
  config: FsmConfig;
  connectRetryCounter: number;
  /** Negotiated hold time once an OPEN is accepted. */
  holdTime: number;
  keepaliveTime: number;
  /** Current automatic-restart wait (backoff). */
  idleHoldTime: number;
  /** Set by ManualStop: no automatic restart. */
  stopped: boolean;
}

export type FsmEvent =
  | { type: 'ManualStart' }
  | { type: 'ManualStop' }
  | { type: 'ConnectRetryTimerExpires' }
  | { type: 'HoldTimerExpires' }
  | { type: 'KeepaliveTimerExpires' }
  | { type: 'IdleHoldTimerExpires' }
  /** Our outgoing connection completed (TcpCRAcked). */
  | { type: 'TcpCRAcked' }
  /** An incoming connection was accepted for this peer (TcpConnectionConfirmed). */
  | { type: 'TcpConnectionConfirmed' }
  | { type: 'TcpConnectionFails' }
  /** A valid OPEN; the session negotiated `holdTime` = min(ours, theirs). */
  | { type: 'BGPOpen'; holdTime: number }
  /** Header, OPEN or UPDATE error: the NOTIFICATION to send. */
  | { type: 'MsgErr'; code: number; subcode: number; data?: Buffer }
  | { type: 'NotifMsg' }
  | { type: 'KeepAliveMsg' }
  | { type: 'UpdateMsg' }
  /** §6.8: this connection lost a collision. */
  | { type: 'OpenCollisionDump' }
  /** §6.8: the session continues on the colliding incoming connection, which has already sent our OPEN. */
  | { type: 'CollisionAdopt' };

export type FsmAction =
  | { type: 'connect' }
  | { type: 'close' }
  | { type: 'sendOpen' }
  | { type: 'sendKeepalive' }
  | { type: 'sendNotification'; code: number; subcode: number; data?: Buffer; reason?: string }
  | { type: 'startTimer'; timer: TimerName; seconds: number }
  | { type: 'stopTimer'; timer: TimerName }
  /** Entered Established: the session starts exchanging routes. */
  | { type: 'established' }
  /** Left Established: the session releases (or, with graceful restart, keeps as stale) the peer's routes. */
  | { type: 'down'; reason: string };

export interface StepResult {
  fsm: Fsm;
  actions: FsmAction[];
}

export function createFsm(config: Partial<FsmConfig> = {}): Fsm {
  const c = { ...DEFAULT_FSM_CONFIG, ...config };
  return { state: 'Idle', config: c, connectRetryCounter: 0, holdTime: 0, keepaliveTime: 0, idleHoldTime: c.idleHoldTime, stopped: true };
}

const stopAll: FsmAction[] = (['connectRetry', 'hold', 'keepalive', 'idleHold'] as TimerName[]).map((timer) => ({ type: 'stopTimer', timer }));

/** §8.2.1.3 keepalive interval: one third of the hold time. */
export function keepaliveFor(holdTime: number): number {
  return holdTime === 0 ? 0 : Math.max(1, Math.floor(holdTime / 3));
}

/** §6.8: which connection survives a collision. */
export function resolveCollision(localId: string, remoteId: string, localAs = 0, remoteAs = 0): 'keep-outgoing' | 'keep-incoming' {
  const n = (id: string) => id.split('.').reduce((a, x) => a * 256 + Number(x), 0);
  // The connection initiated by the speaker with the higher BGP Identifier is kept;
  // equal identifiers (external peers, RFC 6286 §2.3): the one with the larger AS number.
  if (localId === remoteId) return localAs > remoteAs ? 'keep-outgoing' : 'keep-incoming';
  return n(localId) > n(remoteId) ? 'keep-outgoing' : 'keep-incoming';
}

function start(f: Fsm): StepResult {
  const fsm: Fsm = { ...f, stopped: false, connectRetryCounter: 0 };
  const actions: FsmAction[] = [{ type: 'stopTimer', timer: 'idleHold' }, { type: 'startTimer', timer: 'connectRetry', seconds: f.config.connectRetryTime }];
  if (f.config.passive) return { fsm: { ...fsm, state: 'Active' }, actions };
  return { fsm: { ...fsm, state: 'Connect' }, actions: [...actions, { type: 'connect' }] };
}

/** Back to Idle after an error: drop the connection and schedule an automatic restart with backoff. */
function toIdle(f: Fsm, reason: string, notify?: { code: number; subcode: number; data?: Buffer }): StepResult {
  const actions: FsmAction[] = [];
  if (notify) actions.push({ type: 'sendNotification', code: notify.code, subcode: notify.subcode, data: notify.data, reason });
  actions.push({ type: 'close' }, ...stopAll);
  if (f.state === 'Established') actions.push({ type: 'down', reason });
  const fsm: Fsm = { ...f, state: 'Idle', connectRetryCounter: f.connectRetryCounter + 1, holdTime: 0, keepaliveTime: 0 };
  if (!f.stopped) {
    actions.push({ type: 'startTimer', timer: 'idleHold', seconds: f.idleHoldTime });
    fsm.idleHoldTime = Math.min(f.idleHoldTime * 2, f.config.maxIdleHoldTime);
  }
  return { fsm, actions };
}

function fsmError(f: Fsm, e: FsmEvent): StepResult {
  const sub = f.state === 'OpenSent' ? FsmSubcode.OPENSENT : f.state === 'OpenConfirm' ? FsmSubcode.OPENCONFIRM : f.state === 'Established' ? FsmSubcode.ESTABLISHED : FsmSubcode.UNSPECIFIED;
  return toIdle(f, `FSM error: unexpected ${e.type} in ${f.state}`, { code: NotifyCode.FSM_ERROR, subcode: sub });
}

function connected(f: Fsm): StepResult {
  return {
    fsm: { ...f, state: 'OpenSent' },
    actions: [{ type: 'stopTimer', timer: 'connectRetry' }, { type: 'sendOpen' }, { type: 'startTimer', timer: 'hold', seconds: LARGE_HOLD_TIME }],
  };
}

function manualStop(f: Fsm): StepResult {
  const notify = f.state === 'OpenSent' || f.state === 'OpenConfirm' || f.state === 'Established' ? { code: NotifyCode.CEASE, subcode: CeaseSubcode.ADMIN_SHUTDOWN } : undefined;
  const r = toIdle({ ...f, stopped: true }, 'administratively stopped', notify);
  return { fsm: { ...r.fsm, connectRetryCounter: 0, idleHoldTime: f.config.idleHoldTime }, actions: r.actions };
}

/**
 * Continue on the surviving connection of a collision, from whatever the old
 * connection left behind (it may already have failed and sent us to Idle or
 * Active): only the timers of OpenSent may run, or a stale one fires later.
 */
function adopt(f: Fsm): StepResult {
  const actions: FsmAction[] = [...stopAll, { type: 'startTimer', timer: 'hold', seconds: LARGE_HOLD_TIME }];
  return { fsm: { ...f, state: 'OpenSent', holdTime: 0, keepaliveTime: 0 }, actions };
}

export function step(f: Fsm, e: FsmEvent): StepResult {
  if (e.type === 'CollisionAdopt') {
    if (f.stopped || f.state === 'Established') return { fsm: f, actions: [] }; // the session never adopts over these
    return adopt(f);
  }
  if (e.type === 'ManualStop') return f.state === 'Idle' ? { fsm: { ...f, stopped: true }, actions: [{ type: 'stopTimer', timer: 'idleHold' }] } : manualStop(f);
  switch (f.state) {
    case 'Idle':
      if (e.type === 'ManualStart') return start(f);
      if (e.type === 'IdleHoldTimerExpires' && !f.stopped) return start({ ...f, connectRetryCounter: f.connectRetryCounter });
      return { fsm: f, actions: [] }; // §8.2.2: other events are ignored in Idle
    case 'Connect':
    case 'Active':
      switch (e.type) {
        case 'ConnectRetryTimerExpires':
          if (f.config.passive) return { fsm: { ...f, state: 'Active' }, actions: [{ type: 'startTimer', timer: 'connectRetry', seconds: f.config.connectRetryTime }] };
          return { fsm: { ...f, state: 'Connect' }, actions: [{ type: 'close' }, { type: 'startTimer', timer: 'connectRetry', seconds: f.config.connectRetryTime }, { type: 'connect' }] };
        case 'TcpCRAcked':
        case 'TcpConnectionConfirmed':
          return connected(f);
        case 'TcpConnectionFails':
          // The connect attempt failed: wait in Active for the peer or the ConnectRetry timer.
          return { fsm: { ...f, state: 'Active' }, actions: [{ type: 'close' }, { type: 'startTimer', timer: 'connectRetry', seconds: f.config.connectRetryTime }] };
        case 'ManualStart':
          return { fsm: f, actions: [] };
        default:
          return fsmError(f, e);
      }
    case 'OpenSent':
      switch (e.type) {
        case 'HoldTimerExpires':
          return toIdle(f, 'hold timer expired', { code: NotifyCode.HOLD_TIMER_EXPIRED, subcode: 0 });
        case 'TcpConnectionFails':
          return { fsm: { ...f, state: 'Active' }, actions: [{ type: 'close' }, { type: 'stopTimer', timer: 'hold' }, { type: 'startTimer', timer: 'connectRetry', seconds: f.config.connectRetryTime }] };
        case 'BGPOpen': {
          const ka = keepaliveFor(e.holdTime);
          const actions: FsmAction[] = [{ type: 'stopTimer', timer: 'connectRetry' }, { type: 'sendKeepalive' }];
          if (e.holdTime > 0) actions.push({ type: 'startTimer', timer: 'keepalive', seconds: ka }, { type: 'startTimer', timer: 'hold', seconds: e.holdTime });
          else actions.push({ type: 'stopTimer', timer: 'hold' });
          return { fsm: { ...f, state: 'OpenConfirm', holdTime: e.holdTime, keepaliveTime: ka }, actions };
        }
        case 'MsgErr':
          return toIdle(f, 'message error', e);
        case 'NotifMsg':
          return toIdle(f, 'notification received');
        case 'OpenCollisionDump':
          return toIdle(f, 'connection collision', { code: NotifyCode.CEASE, subcode: CeaseSubcode.CONNECTION_COLLISION_RESOLUTION });
        case 'ManualStart':
          return { fsm: f, actions: [] };
        default:
          return fsmError(f, e);
      }
    case 'OpenConfirm':
    case 'Established': {
      const est = f.state === 'Established';
      switch (e.type) {
        case 'HoldTimerExpires':
          return toIdle(f, 'hold timer expired', { code: NotifyCode.HOLD_TIMER_EXPIRED, subcode: 0 });
        case 'KeepaliveTimerExpires':
          return { fsm: f, actions: [{ type: 'sendKeepalive' }, { type: 'startTimer', timer: 'keepalive', seconds: f.keepaliveTime }] };
        case 'TcpConnectionFails':
          return toIdle(f, 'connection lost');
        case 'NotifMsg':
          return toIdle(f, 'notification received');
        case 'MsgErr':
          return toIdle(f, 'message error', e);
        case 'OpenCollisionDump':
          return toIdle(f, 'connection collision', { code: NotifyCode.CEASE, subcode: CeaseSubcode.CONNECTION_COLLISION_RESOLUTION });
        case 'KeepAliveMsg': {
          const restart: FsmAction[] = f.holdTime > 0 ? [{ type: 'startTimer', timer: 'hold', seconds: f.holdTime }] : [];
          if (est) return { fsm: f, actions: restart };
          // Reaching Established resets the backoff.
          return { fsm: { ...f, state: 'Established', idleHoldTime: f.config.idleHoldTime, connectRetryCounter: 0 }, actions: [...restart, { type: 'established' }] };
        }
        case 'UpdateMsg':
          if (!est) return fsmError(f, e);
          return { fsm: f, actions: f.holdTime > 0 ? [{ type: 'startTimer', timer: 'hold', seconds: f.holdTime }] : [] };
        case 'ManualStart':
          return { fsm: f, actions: [] };
        default:
          return fsmError(f, e);
      }
    }
  }
}
