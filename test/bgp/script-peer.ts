/** Test side of fixtures/script-peer.cjs: a scripted BGP peer inside a sandbox namespace. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { REPO, trackPid, untrackPid, killTracked, waitFor, type Netns } from '../sandbox';

export interface PeerEvent {
  ev: 'connected' | 'msg' | 'closed' | 'error' | 'done';
  type?: number;
  len?: number;
  code?: number;
  subcode?: number;
  announce?: string[];
  withdraw?: string[];
  nextHop?: string;
  eor?: number;
  segments?: { type: number; n: number; first: number }[];
  error?: string;
  message?: string;
  id?: number;
  result?: unknown;
}

export interface OpenSpec {
  asn: number;
  routerId: string;
  holdTime?: number;
  families?: ('ipv4' | 'ipv6')[];
  gr?: { restartTime?: number; restarting?: boolean; forwarding?: boolean };
  ext?: boolean;
}

export class ScriptPeer {
  readonly events: PeerEvent[] = [];
  private readonly child: ChildProcess;
  private nextId = 1;

  constructor(
    readonly ns: Netns,
    readonly address: string,
  ) {
    this.child = spawn('nsenter', [`--net=${ns.path}`, '--', process.execPath, path.join(__dirname, 'fixtures', 'script-peer.cjs'), REPO], { stdio: ['pipe', 'pipe', 'inherit'] });
    trackPid(this.child.pid!);
    readline.createInterface({ input: this.child.stdout! }).on('line', (l) => this.events.push(JSON.parse(l) as PeerEvent));
  }

  private async cmd(op: string, args: object = {}): Promise<unknown> {
    const id = this.nextId++;
    this.child.stdin!.write(JSON.stringify({ op, id, ...args }) + '\n');
    const done = await waitFor(() => this.events.find((e) => e.ev === 'done' && e.id === id), { timeoutMs: 20_000, intervalMs: 2, what: `script peer ${op}` });
    if (done.error) throw new Error(`script peer ${op}: ${done.error}`);
    return done.result;
  }

  /** Dial the speaker, OPEN, and wait for Established (its KEEPALIVE after our OPEN). */
  async up(to: string, open: OpenSpec): Promise<void> {
    const from = this.events.length;
    await this.cmd('connect', { host: to, local: this.address });
    await this.cmd('open', open);
    await waitFor(() => this.events.slice(from).some((e) => e.ev === 'msg' && e.type === 4) || this.events.slice(from).find((e) => e.type === 3 || e.ev === 'closed'), {
      timeoutMs: 15_000,
      what: `session from ${this.address}`,
    });
    const bad = this.events.slice(from).find((e) => e.type === 3);
    if (bad) throw new Error(`NOTIFICATION ${bad.code}/${bad.subcode} from the speaker`);
  }

  connect(to: string): Promise<unknown> {
    return this.cmd('connect', { host: to, local: this.address });
  }
  open(o: OpenSpec): Promise<unknown> {
    return this.cmd('open', o);
  }
  /** Send an UPDATE built by the codec; returns its length in octets. */
  async update(u: { withdrawn?: string[]; attrs?: object[]; nlri?: string[] }): Promise<number> {
    return (await this.cmd('update', u)) as number;
  }
  raw(hex: string): Promise<unknown> {
    return this.cmd('raw', { hex });
  }
  close(): Promise<unknown> {
    return this.cmd('close');
  }

  /** UPDATE events received so far. */
  updates(): PeerEvent[] {
    return this.events.filter((e) => e.ev === 'msg' && e.type === 2);
  }
  /** Prefixes the speaker announces to us now (announcements minus later withdrawals). */
  routes(): Map<string, PeerEvent> {
    const m = new Map<string, PeerEvent>();
    for (const u of this.updates()) {
      for (const p of u.withdraw ?? []) m.delete(p);
      for (const p of u.announce ?? []) m.set(p, u);
    }
    return m;
  }
  notifications(): PeerEvent[] {
    return this.events.filter((e) => e.type === 3);
  }

  stop(): void {
    killTracked(this.child.pid!, 'SIGKILL');
    untrackPid(this.child.pid!);
  }
}

/** Path attributes for a plain route from `asn` via `nextHop`, plus extras. */
export function attrs(asn: number | number[], nextHop: string, extra: object[] = []): object[] {
  const asns = Array.isArray(asn) ? asn : [asn];
  return [
    { kind: 'origin', flags: 0x40, origin: 0 },
    { kind: 'as-path', flags: 0x40, segments: [{ type: 2, asns }] },
    { kind: 'next-hop', flags: 0x40, nextHop },
    ...extra,
  ];
}
