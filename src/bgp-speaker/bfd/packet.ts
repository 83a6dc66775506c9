/**
 * BFD control packets (RFC 5880 §4.1) without authentication, and the
 * reception checks of §6.8.6 that do not need session state. Pure.
 */

export const BFD_PORT = 3784; // RFC 5881 §4: single-hop control packets
export const BFD_VERSION = 1;
const LEN = 24;

export const BfdState = { ADMIN_DOWN: 0, DOWN: 1, INIT: 2, UP: 3 } as const;
export type BfdStateNum = (typeof BfdState)[keyof typeof BfdState];
export const BFD_STATE_NAME = ['AdminDown', 'Down', 'Init', 'Up'] as const;

/** Diagnostic codes (§4.1). */
export const BfdDiag = { NONE: 0, DETECT_EXPIRED: 1, ECHO_FAILED: 2, NEIGHBOR_DOWN: 3, FWD_RESET: 4, PATH_DOWN: 5, CONCAT_DOWN: 6, ADMIN_DOWN: 7, REV_CONCAT_DOWN: 8 } as const;

export interface BfdPacket {
  diag: number;
  state: BfdStateNum;
  poll: boolean;
  final: boolean;
  /** Control Plane Independent. */
  cpi: boolean;
  demand: boolean;
  detectMult: number;
  myDisc: number;
  yourDisc: number;
  /** Microseconds, as on the wire. */
  desiredMinTx: number;
  requiredMinRx: number;
  requiredMinEchoRx: number;
}

export class BfdDecodeError extends Error {}

export function encodeBfd(p: BfdPacket): Buffer {
  const b = Buffer.alloc(LEN);
  b[0] = (BFD_VERSION << 5) | (p.diag & 0x1f);
  b[1] = (p.state << 6) | (p.poll ? 0x20 : 0) | (p.final ? 0x10 : 0) | (p.cpi ? 0x08 : 0) | (p.demand ? 0x02 : 0);
  b[2] = p.detectMult;
  b[3] = LEN;
  b.writeUInt32BE(p.myDisc >>> 0, 4);
  b.writeUInt32BE(p.yourDisc >>> 0, 8);
  b.writeUInt32BE(p.desiredMinTx >>> 0, 12);
  b.writeUInt32BE(p.requiredMinRx >>> 0, 16);
  b.writeUInt32BE(p.requiredMinEchoRx >>> 0, 20);
  return b;
}

/** Decode and apply the §6.8.6 checks that need no session; throws BfdDecodeError (the packet is discarded). */
export function decodeBfd(b: Buffer): BfdPacket {
  if (b.length < LEN) throw new BfdDecodeError(`${b.length} octets`);
  if (b[0] >> 5 !== BFD_VERSION) throw new BfdDecodeError(`version ${b[0] >> 5}`);
  const len = b[3];
  const auth = (b[1] & 0x04) !== 0;
  if (len < (auth ? 26 : LEN) || len > b.length) throw new BfdDecodeError(`length field ${len} for ${b.length} octets`);
  if (auth) throw new BfdDecodeError('authentication is not configured');
  const p: BfdPacket = {
    diag: b[0] & 0x1f,
    state: (b[1] >> 6) as BfdStateNum,
    poll: (b[1] & 0x20) !== 0,
    final: (b[1] & 0x10) !== 0,
    cpi: (b[1] & 0x08) !== 0,
    demand: (b[1] & 0x02) !== 0,
    detectMult: b[2],
    myDisc: b.readUInt32BE(4),
    yourDisc: b.readUInt32BE(8),
    desiredMinTx: b.readUInt32BE(12),
    requiredMinRx: b.readUInt32BE(16),
    requiredMinEchoRx: b.readUInt32BE(20),
  };
  if (b[1] & 0x01) throw new BfdDecodeError('multipoint bit set');
  if (p.detectMult === 0) throw new BfdDecodeError('detect multiplier 0');
  if (p.myDisc === 0) throw new BfdDecodeError('my discriminator 0');
  if (p.yourDisc === 0 && p.state !== BfdState.DOWN && p.state !== BfdState.ADMIN_DOWN) throw new BfdDecodeError('your discriminator 0 outside Down/AdminDown');
  if (p.poll && p.final) throw new BfdDecodeError('poll and final both set');
  return p;
}
