/**
 * A collision ordering two real speakers hit only by chance (it failed CI
 * once): the peer dumps our connection with Cease/7 before its own
 * connection's OPEN arrives. The speaker must continue on the peer's
 * connection without stale timers from the failed one; before the fix, the
 * idle-hold timer of the dead connection fired in Established and the
 * session fell with NOTIFICATION 5/3.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as path from 'node:path';
import { REPO, Sandbox, waitFor, type Netns } from '../sandbox';
import { startTern, ternReady, peerState, type TernNode } from './harness';

const sb = new Sandbox('bgpx');
let a: Netns;
let b: Netns;
let ta: TernNode;

beforeAll(async () => {
  a = sb.netns('a');
  b = sb.netns('b');
  sb.link(a, 'eth0', b, 'eth0', { aAddr: '198.18.7.1/24', bAddr: '198.18.7.2/24' });
  ta = startTern(sb, a, sb.tmpdir(), 'a', {
    asn: 65000, routerId: '198.18.7.1', holdTime: 9, connectRetryTime: 1, idleHoldTime: 1, families: ['ipv4'], routes: ['10.71.0.0/24'],
    peers: [{ address: '198.18.7.2', asn: 65000 }],
  });
  await ternReady(ta);
});
afterAll(() => sb.cleanup());

describe('connection collision: the old connection fails before the winner\'s OPEN', () => {
  it('the session comes up on the peer\'s connection and stays up past the idle-hold time', async () => {
    const peer = b.execAsync(process.execPath, [path.join(__dirname, 'fixtures', 'collision-peer.cjs'), REPO, '198.18.7.2', '198.18.7.1', '65000', '5'], { timeoutMs: 30_000 });
    const r = await peer;
    expect(r.code, r.stderr + ta.daemon.output().slice(-3000)).toBe(0);
    const { seen } = JSON.parse(r.stdout) as { seen: (number | string)[] };
    // KEEPALIVEs (and our UPDATEs), never a NOTIFICATION.
    expect(seen.filter((m) => typeof m === 'string'), ta.daemon.output().slice(-3000)).toEqual([]);
    expect(seen).toContain(4);
    expect(seen).toContain(2); // the route and End-of-RIB went out on the adopted connection
  }, 40_000);

  it('the speaker reports the Cease it received on the dumped connection, not an FSM error', async () => {
    const p = await waitFor(() => peerState(ta, '198.18.7.2'), { what: 'peer row' });
    expect(p.lastError ?? '').not.toMatch(/NOTIFICATION 5\//);
  });
});
