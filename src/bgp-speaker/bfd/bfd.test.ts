import { describe, it, expect } from 'vitest';
import { encodeBfd, decodeBfd, BfdDecodeError, BfdState, BfdDiag, type BfdPacket } from './packet';
import { createBfd, receive, detectionExpired, txInterval, detectionTime, packetOf, jitter, adminDown, type BfdSession } from './fsm';

const CFG = { minRx: 300, minTx: 300, multiplier: 3 };
const pkt = (o: Partial<BfdPacket> = {}): BfdPacket => ({
  diag: 0, state: BfdState.DOWN, poll: false, final: false, cpi: false, demand: false, detectMult: 3,
  myDisc: 77, yourDisc: 0, desiredMinTx: 300_000, requiredMinRx: 300_000, requiredMinEchoRx: 0, ...o,
});

describe('BFD control packet (RFC 5880 §4.1)', () => {
  it('round-trips, bit for bit', () => {
    const p = pkt({ state: BfdState.UP, poll: true, diag: BfdDiag.DETECT_EXPIRED, yourDisc: 9 });
    const b = encodeBfd(p);
    expect(b.toString('hex')).toBe('21e00318' + '0000004d' + '00000009' + '000493e0' + '000493e0' + '00000000');
    expect(decodeBfd(b)).toEqual(p);
  });
  const bad: [string, (b: Buffer) => void][] = [
    ['version 0', (b) => (b[0] &= 0x1f)],
    ['length field beyond the packet', (b) => (b[3] = 40)],
    ['length field below 24', (b) => (b[3] = 20)],
    ['authentication present', (b) => (b[1] |= 0x04)],
    ['multipoint', (b) => (b[1] |= 0x01)],
    ['detect multiplier 0', (b) => (b[2] = 0)],
    ['my discriminator 0', (b) => b.writeUInt32BE(0, 4)],
    ['your discriminator 0 while Up', (b) => (b[1] = (b[1] & 0x3f) | 0xc0)],
    ['poll and final', (b) => (b[1] |= 0x30)],
  ];
  for (const [name, f] of bad) {
    it(`discards: ${name}`, () => {
      const b = encodeBfd(pkt());
      f(b);
      expect(() => decodeBfd(b)).toThrow(BfdDecodeError);
    });
  }
  it('discards short packets', () => expect(() => decodeBfd(Buffer.alloc(10))).toThrow(BfdDecodeError));
});

describe('BFD session (RFC 5880 §6.8.6 three-way handshake)', () => {
  const run = (s: BfdSession, ps: Partial<BfdPacket>[]) => ps.reduce<{ s: BfdSession; events: string[] }>((acc, p) => {
    const r = receive(acc.s, pkt(p));
    return { s: r.s, events: r.event ? [...acc.events, r.event] : acc.events };
  }, { s, events: [] });

  const table: { name: string; from: number; rx: number; to: number; event?: string }[] = [
    { name: 'Down + Down -> Init', from: BfdState.DOWN, rx: BfdState.DOWN, to: BfdState.INIT },
    { name: 'Down + Init -> Up', from: BfdState.DOWN, rx: BfdState.INIT, to: BfdState.UP, event: 'up' },
    { name: 'Down + Up stays Down', from: BfdState.DOWN, rx: BfdState.UP, to: BfdState.DOWN },
    { name: 'Init + Init -> Up', from: BfdState.INIT, rx: BfdState.INIT, to: BfdState.UP, event: 'up' },
    { name: 'Init + Up -> Up', from: BfdState.INIT, rx: BfdState.UP, to: BfdState.UP, event: 'up' },
    { name: 'Init + Down stays Init', from: BfdState.INIT, rx: BfdState.DOWN, to: BfdState.INIT },
    { name: 'Up + Down -> Down (neighbor down)', from: BfdState.UP, rx: BfdState.DOWN, to: BfdState.DOWN, event: 'down' },
    { name: 'Up + AdminDown -> Down', from: BfdState.UP, rx: BfdState.ADMIN_DOWN, to: BfdState.DOWN, event: 'down' },
    { name: 'Up + Up stays Up', from: BfdState.UP, rx: BfdState.UP, to: BfdState.UP },
  ];
  for (const t of table) {
    it(t.name, () => {
      const s = { ...createBfd(CFG, 5), state: t.from as BfdSession['state'] };
      const r = receive(s, pkt({ state: t.rx as BfdPacket['state'], yourDisc: t.rx === BfdState.DOWN || t.rx === BfdState.ADMIN_DOWN ? 0 : 5 }));
      expect(r.s.state).toBe(t.to);
      expect(r.event).toBe(t.event);
    });
  }

  it('comes up, then runs at the configured rate after a Poll/Final exchange', () => {
    const s0 = createBfd(CFG, 5);
    expect(packetOf(s0, false).desiredMinTx).toBe(1_000_000); // slow until Up
    const { s, events } = run(s0, [{ state: BfdState.DOWN }, { state: BfdState.UP, yourDisc: 5 }]);
    expect(events).toEqual(['up']);
    expect(s.desiredMinTx).toBe(300_000);
    expect(packetOf(s, false).poll).toBe(true);
    const done = receive(s, pkt({ state: BfdState.UP, yourDisc: 5, final: true })).s;
    expect(done.polling).toBe(false);
    expect(txInterval(done)).toBe(300);
    expect(detectionTime(done)).toBe(900);
  });

  it('answers a Poll with Final at once', () => {
    const r = receive({ ...createBfd(CFG, 5), state: BfdState.UP }, pkt({ state: BfdState.UP, yourDisc: 5, poll: true }));
    expect(r.send).toEqual({ final: true });
    expect(packetOf(r.s, true)).toMatchObject({ final: true, poll: false });
  });

  it('ignores packets for another discriminator', () => {
    const s = createBfd(CFG, 5);
    expect(receive(s, pkt({ state: BfdState.INIT, yourDisc: 6 })).s).toBe(s);
  });

  it('detection time expired: Up -> Down with diag 1, remote discriminator forgotten', () => {
    const up = run(createBfd(CFG, 5), [{ state: BfdState.INIT, yourDisc: 5 }]).s;
    const r = detectionExpired(up);
    expect(r.event).toBe('down');
    expect(r.s).toMatchObject({ state: BfdState.DOWN, diag: BfdDiag.DETECT_EXPIRED, remoteDisc: 0, desiredMinTx: 1_000_000 });
    expect(detectionExpired(r.s).event).toBeUndefined();
  });

  it('uses the slower of our rx and the remote tx for detection, and the slower of our tx and remote rx for sending', () => {
    const s = run(createBfd(CFG, 5), [{ state: BfdState.INIT, yourDisc: 5, desiredMinTx: 500_000, requiredMinRx: 700_000, detectMult: 4 }]).s;
    expect(detectionTime(s)).toBe(2000);
    expect(txInterval(s)).toBe(700);
    expect(txInterval({ ...s, remoteMinRx: 0 })).toBeUndefined(); // §6.8.7: the peer asked for nothing
  });

  it('jitter stays within 75-100 % (75-90 % with multiplier 1)', () => {
    expect(jitter(300, 3, 0)).toBe(225);
    expect(jitter(300, 3, 0.999)).toBeLessThanOrEqual(300);
    expect(jitter(300, 1, 0.999)).toBeLessThanOrEqual(270);
  });

  it('AdminDown says so on the wire', () => {
    expect(packetOf(adminDown(createBfd(CFG, 5)), false)).toMatchObject({ state: BfdState.ADMIN_DOWN, diag: BfdDiag.ADMIN_DOWN });
  });
});
