import { describe, it, expect } from 'vitest';
import { createFsm, step, resolveCollision, LARGE_HOLD_TIME, type Fsm, type FsmAction, type FsmEvent, type TimerName, type FsmConfig } from './fsm';

const cfg: Partial<FsmConfig> = { holdTime: 90, connectRetryTime: 30, idleHoldTime: 5, maxIdleHoldTime: 40 };
const ev = (type: FsmEvent['type'], extra: object = {}): FsmEvent => ({ type, ...extra }) as FsmEvent;
const has = (actions: FsmAction[], a: Partial<FsmAction>) => actions.some((x) => Object.entries(a).every(([k, v]) => (x as Record<string, unknown>)[k] === v));

function run(events: FsmEvent[], config: Partial<FsmConfig> = cfg): { fsm: Fsm; actions: FsmAction[][] } {
  let fsm = createFsm(config);
  const actions: FsmAction[][] = [];
  for (const e of events) {
    const r = step(fsm, e);
    fsm = r.fsm;
    actions.push(r.actions);
  }
  return { fsm, actions };
}

const toEstablished = [ev('ManualStart'), ev('TcpCRAcked'), ev('BGPOpen', { holdTime: 30 }), ev('KeepAliveMsg')];

describe('FSM transitions (RFC 4271 §8.2.2)', () => {
  const table: { name: string; events: FsmEvent[]; config?: Partial<FsmConfig>; state: string; last: Partial<FsmAction>[]; notLast?: Partial<FsmAction>[] }[] = [
    { name: 'start connects', events: [ev('ManualStart')], state: 'Connect', last: [{ type: 'connect' }, { type: 'startTimer', timer: 'connectRetry' }] },
    { name: 'passive start listens only', events: [ev('ManualStart')], config: { ...cfg, passive: true }, state: 'Active', last: [{ type: 'startTimer', timer: 'connectRetry' }], notLast: [{ type: 'connect' }] },
    { name: 'passive retry does not connect', events: [ev('ManualStart'), ev('ConnectRetryTimerExpires')], config: { ...cfg, passive: true }, state: 'Active', last: [], notLast: [{ type: 'connect' }] },
    { name: 'connect retry reconnects', events: [ev('ManualStart'), ev('ConnectRetryTimerExpires')], state: 'Connect', last: [{ type: 'connect' }] },
    { name: 'connection failure goes Active', events: [ev('ManualStart'), ev('TcpConnectionFails')], state: 'Active', last: [{ type: 'close' }] },
    { name: 'Active retries with connect', events: [ev('ManualStart'), ev('TcpConnectionFails'), ev('ConnectRetryTimerExpires')], state: 'Connect', last: [{ type: 'connect' }] },
    { name: 'connected sends OPEN with a large hold timer', events: [ev('ManualStart'), ev('TcpCRAcked')], state: 'OpenSent', last: [{ type: 'sendOpen' }, { type: 'startTimer', timer: 'hold', seconds: LARGE_HOLD_TIME }] },
    { name: 'incoming connection in Active', events: [ev('ManualStart'), ev('TcpConnectionFails'), ev('TcpConnectionConfirmed')], state: 'OpenSent', last: [{ type: 'sendOpen' }] },
    { name: 'OPEN: keepalive at a third of the negotiated hold time', events: [ev('ManualStart'), ev('TcpCRAcked'), ev('BGPOpen', { holdTime: 30 })], state: 'OpenConfirm', last: [{ type: 'sendKeepalive' }, { type: 'startTimer', timer: 'keepalive', seconds: 10 }, { type: 'startTimer', timer: 'hold', seconds: 30 }] },
    { name: 'hold time zero: no timers', events: [ev('ManualStart'), ev('TcpCRAcked'), ev('BGPOpen', { holdTime: 0 })], state: 'OpenConfirm', last: [{ type: 'sendKeepalive' }, { type: 'stopTimer', timer: 'hold' }], notLast: [{ type: 'startTimer', timer: 'keepalive' }] },
    { name: 'KEEPALIVE in OpenConfirm establishes', events: toEstablished, state: 'Established', last: [{ type: 'established' }, { type: 'startTimer', timer: 'hold', seconds: 30 }] },
    { name: 'UPDATE restarts the hold timer', events: [...toEstablished, ev('UpdateMsg')], state: 'Established', last: [{ type: 'startTimer', timer: 'hold', seconds: 30 }] },
    { name: 'keepalive timer sends KEEPALIVE', events: [...toEstablished, ev('KeepaliveTimerExpires')], state: 'Established', last: [{ type: 'sendKeepalive' }, { type: 'startTimer', timer: 'keepalive', seconds: 10 }] },
    { name: 'hold timer expiry: NOTIFICATION 4/0 and down', events: [...toEstablished, ev('HoldTimerExpires')], state: 'Idle', last: [{ type: 'sendNotification', code: 4, subcode: 0 }, { type: 'close' }, { type: 'down' }, { type: 'startTimer', timer: 'idleHold', seconds: 5 }] },
    { name: 'hold expiry in OpenSent', events: [ev('ManualStart'), ev('TcpCRAcked'), ev('HoldTimerExpires')], state: 'Idle', last: [{ type: 'sendNotification', code: 4, subcode: 0 }], notLast: [{ type: 'down' }] },
    { name: 'UPDATE error sends its NOTIFICATION', events: [...toEstablished, ev('MsgErr', { code: 3, subcode: 1 })], state: 'Idle', last: [{ type: 'sendNotification', code: 3, subcode: 1 }, { type: 'down' }] },
    { name: 'NOTIFICATION received: down without reply', events: [...toEstablished, ev('NotifMsg')], state: 'Idle', last: [{ type: 'close' }, { type: 'down' }], notLast: [{ type: 'sendNotification' }] },
    { name: 'TCP loss in Established', events: [...toEstablished, ev('TcpConnectionFails')], state: 'Idle', last: [{ type: 'down' }] },
    { name: 'manual stop sends Cease/2 and stays down', events: [...toEstablished, ev('ManualStop')], state: 'Idle', last: [{ type: 'sendNotification', code: 6, subcode: 2 }, { type: 'down' }], notLast: [{ type: 'startTimer', timer: 'idleHold' }] },
    { name: 'UPDATE in OpenSent is an FSM error 5/1', events: [ev('ManualStart'), ev('TcpCRAcked'), ev('UpdateMsg')], state: 'Idle', last: [{ type: 'sendNotification', code: 5, subcode: 1 }] },
    { name: 'UPDATE in OpenConfirm is an FSM error 5/2', events: [ev('ManualStart'), ev('TcpCRAcked'), ev('BGPOpen', { holdTime: 90 }), ev('UpdateMsg')], state: 'Idle', last: [{ type: 'sendNotification', code: 5, subcode: 2 }] },
    { name: 'OPEN in Established is an FSM error 5/3', events: [...toEstablished, ev('BGPOpen', { holdTime: 90 })], state: 'Idle', last: [{ type: 'sendNotification', code: 5, subcode: 3 }] },
    { name: 'collision loser sends Cease/7', events: [ev('ManualStart'), ev('TcpCRAcked'), ev('BGPOpen', { holdTime: 90 }), ev('OpenCollisionDump')], state: 'Idle', last: [{ type: 'sendNotification', code: 6, subcode: 7 }] },
    { name: 'collision winner adopted after the old connection failed: idle hold stopped', events: [ev('ManualStart'), ev('TcpCRAcked'), ev('BGPOpen', { holdTime: 90 }), ev('NotifMsg'), ev('CollisionAdopt')], state: 'OpenSent', last: [{ type: 'stopTimer', timer: 'idleHold' }, { type: 'stopTimer', timer: 'keepalive' }, { type: 'startTimer', timer: 'hold', seconds: LARGE_HOLD_TIME }], notLast: [{ type: 'sendOpen' }, { type: 'connect' }] },
    { name: 'collision winner adopted from Active: connect retry stopped', events: [ev('ManualStart'), ev('TcpCRAcked'), ev('TcpConnectionFails'), ev('CollisionAdopt')], state: 'OpenSent', last: [{ type: 'stopTimer', timer: 'connectRetry' }] },
    { name: 'an Established session never adopts', events: [...toEstablished, ev('CollisionAdopt')], state: 'Established', last: [] },
    { name: 'a stopped session never adopts', events: [ev('ManualStart'), ev('ManualStop'), ev('CollisionAdopt')], state: 'Idle', last: [] },
    { name: 'FSM error names the unexpected event', events: [...toEstablished, ev('IdleHoldTimerExpires')], state: 'Idle', last: [{ type: 'sendNotification', code: 5, subcode: 3, reason: 'FSM error: unexpected IdleHoldTimerExpires in Established' }] },
    { name: 'events in Idle are ignored', events: [ev('KeepAliveMsg')], state: 'Idle', last: [] },
    { name: 'idle hold expiry restarts automatically', events: [...toEstablished, ev('HoldTimerExpires'), ev('IdleHoldTimerExpires')], state: 'Connect', last: [{ type: 'connect' }] },
    { name: 'no automatic restart after manual stop', events: [ev('ManualStart'), ev('ManualStop'), ev('IdleHoldTimerExpires')], state: 'Idle', last: [] },
  ];
  for (const t of table) {
    it(t.name, () => {
      const { fsm, actions } = run(t.events, t.config);
      expect(fsm.state).toBe(t.state);
      const last = actions[actions.length - 1];
      for (const a of t.last) expect(has(last, a), `${JSON.stringify(a)} in ${JSON.stringify(last)}`).toBe(true);
      for (const a of t.notLast ?? []) expect(has(last, a)).toBe(false);
    });
  }

  it('backs off: idle hold doubles per failure up to the maximum, resets on Established', () => {
    const fail = [ev('TcpCRAcked'), ev('HoldTimerExpires'), ev('IdleHoldTimerExpires')];
    const { actions, fsm } = run([ev('ManualStart'), ...fail, ...fail, ...fail, ...fail, ...fail]);
    const waits = actions.flat().filter((a) => a.type === 'startTimer' && a.timer === 'idleHold').map((a) => (a as { seconds: number }).seconds);
    expect(waits).toEqual([5, 10, 20, 40, 40]);
    const after = run([ev('ManualStart'), ...fail, ...fail, ev('TcpCRAcked'), ev('BGPOpen', { holdTime: 9 }), ev('KeepAliveMsg')]);
    expect(after.fsm.idleHoldTime).toBe(5);
    expect(fsm.connectRetryCounter).toBe(0); // counter reset by each automatic start
  });
});

describe('collision detection (§6.8)', () => {
  const table = [
    { local: '192.0.2.2', remote: '192.0.2.1', want: 'keep-outgoing' },
    { local: '192.0.2.1', remote: '192.0.2.2', want: 'keep-incoming' },
    { local: '10.0.0.1', remote: '9.255.255.255', want: 'keep-outgoing' },
    { local: '1.0.0.0', remote: '0.255.255.255', want: 'keep-outgoing' },
  ];
  for (const t of table) it(`${t.local} vs ${t.remote}`, () => expect(resolveCollision(t.local, t.remote)).toBe(t.want));
});

/** A fake clock driving the pure FSM the way the session does: timers from actions. */
class FakeClockHarness {
  now = 0;
  timers = new Map<TimerName, number>();
  fsm: Fsm;
  sent: string[] = [];
  constructor(config: Partial<FsmConfig>) {
    this.fsm = createFsm(config);
  }
  dispatch(e: FsmEvent): void {
    const r = step(this.fsm, e);
    this.fsm = r.fsm;
    for (const a of r.actions) {
      if (a.type === 'startTimer') this.timers.set(a.timer, this.now + a.seconds);
      else if (a.type === 'stopTimer') this.timers.delete(a.timer);
      else if (a.type === 'sendKeepalive') this.sent.push(`K@${this.now}`);
      else if (a.type === 'sendNotification') this.sent.push(`N${a.code}/${a.subcode}@${this.now}`);
    }
  }
  advance(seconds: number, onTick?: (t: number) => void): void {
    const end = this.now + seconds;
    for (let t = this.now + 1; t <= end; t++) {
      this.now = t;
      onTick?.(t);
      const names: Record<TimerName, FsmEvent['type']> = { connectRetry: 'ConnectRetryTimerExpires', hold: 'HoldTimerExpires', keepalive: 'KeepaliveTimerExpires', idleHold: 'IdleHoldTimerExpires' };
      for (const [name, at] of [...this.timers]) {
        if (at <= t && this.timers.get(name) === at) {
          this.timers.delete(name);
          this.dispatch(ev(names[name]));
        }
      }
    }
  }
}

describe('timers with a fake clock', () => {
  it('keeps the session up while the peer sends keepalives, sends ours every hold/3', () => {
    const h = new FakeClockHarness(cfg);
    for (const e of toEstablished) h.dispatch(e);
    h.advance(95, (t) => t % 10 === 0 && h.dispatch(ev('KeepAliveMsg')));
    expect(h.fsm.state).toBe('Established');
    expect(h.sent.filter((s) => s.startsWith('K')).length).toBeGreaterThanOrEqual(9);
  });
  it('expires the hold timer when the peer goes silent, then retries after the backoff', () => {
    const h = new FakeClockHarness(cfg);
    for (const e of toEstablished) h.dispatch(e);
    h.advance(29);
    expect(h.fsm.state).toBe('Established');
    h.advance(1);
    expect(h.fsm.state).toBe('Idle');
    expect(h.sent).toContain('N4/0@30');
    h.advance(5);
    expect(h.fsm.state).toBe('Connect');
  });
  it('retries connecting every ConnectRetry interval', () => {
    const h = new FakeClockHarness(cfg);
    h.dispatch(ev('ManualStart'));
    h.dispatch(ev('TcpConnectionFails'));
    h.advance(30);
    expect(h.fsm.state).toBe('Connect');
    expect(h.timers.get('connectRetry')).toBe(60);
  });
});
