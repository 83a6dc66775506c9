/**
 * A small interpreter for the chains the compiler emits: follows one NEW
 * packet through them and reports the verdict and how many rules it was
 * checked against. It understands only the matches and targets Tern writes;
 * tests use it to hold the compiled chains to the same verdicts as `explain`,
 * and its count to the kernel's own packet counters (test/acl/rule-count).
 */
import type { FamilyRuleset } from './compile';
import { addrOnly, inCidr } from './resolve';
import { TernError } from '../lib/errors';
import { ifaceGroup } from '../lib/iface-group';

export interface SimPacket {
  src: string;
  dst: string;
  inIface?: string;
  outIface?: string;
  /** The interfaces' device groups; by default the one each name gives, as the CNI plugin sets it. */
  inGroup?: number;
  outGroup?: number;
  protocol: number;
  dstPort?: number;
  icmpType?: number;
  icmpCode?: number;
}

export interface SimResult {
  verdict: 'accept' | 'drop';
  rulesTraversed: number;
}

const PROTO: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, 'ipv6-icmp': 58, sctp: 132 };

export function simulate(rs: FamilyRuleset, hook: 'FORWARD' | 'INPUT', pkt: SimPacket): SimResult {
  const chains = new Map(rs.chains.map((c) => [c.name, c.rules]));
  const sets = new Map(rs.sets.map((s) => [s.name, new Set(s.members.map((m) => m.replace(/\/(32|128),/, ',')))]));
  let mark = 0;
  let n = 0;
  const ip = (a: string) => addrOnly(a);
  const groups = new Map<string, number>();
  const groupOf = (dev: string) => groups.get(dev) ?? groups.set(dev, ifaceGroup(dev)).get(dev)!;
  const ifMatch = (pat: string, name?: string) => name !== undefined && (pat.endsWith('+') ? name.startsWith(pat.slice(0, -1)) : name === pat);
  const setHas = (name: string, dirs: string): boolean => {
    const s = sets.get(name);
    if (!s) throw new TernError('INTERNAL', `unknown set ${name}`);
    const parts = dirs.split(',');
    const addr = ip(parts[0] === 'src' ? pkt.src : pkt.dst);
    if (parts.length === 1) return s.has(addr) || [...s].some((m) => m.includes('/') && inCidr(addr, m));
    if (parts[1] === 'src' || parts[1] === 'dst') {
      // hash:net,iface (src,src / dst,dst) or hash:ip,port (dst,dst)
      const iface = parts[1] === 'src' ? pkt.inIface : pkt.outIface;
      const proto = Object.keys(PROTO).find((k) => PROTO[k] === pkt.protocol);
      return s.has(`${addr},${iface}`) || s.has(`${addr},${proto}:${pkt.dstPort}`);
    }
    return false;
  };
  const portIn = (list: string, port?: number) =>
    port !== undefined &&
    list.split(',').some((p) => {
      const [a, b] = p.split(':').map(Number);
      return port >= a && port <= (b ?? a);
    });
  /** Does the rule's match part hold? */
  const matches = (tok: string[]): boolean => {
    for (let i = 0; i < tok.length; i++) {
      const neg = tok[i] === '!';
      if (neg) i++;
      const t = tok[i];
      let ok: boolean;
      switch (t) {
        case '-i':
          ok = ifMatch(tok[++i], pkt.inIface);
          break;
        case '-o':
          ok = ifMatch(tok[++i], pkt.outIface);
          break;
        case '--src-group':
        case '--dst-group': {
          const [v, m] = tok[++i].split('/').map((x) => parseInt(x, 16));
          const src = t === '--src-group';
          const dev = src ? pkt.inIface : pkt.outIface;
          const g = (src ? pkt.inGroup : pkt.outGroup) ?? (dev === undefined ? 0 : groupOf(dev));
          ok = dev !== undefined && (g & m) >>> 0 === v;
          break;
        }
        case '-p':
          ok = (PROTO[tok[++i]] ?? Number(tok[i])) === pkt.protocol;
          break;
        case '-s':
          ok = inCidr(ip(pkt.src), tok[++i]);
          break;
        case '-d':
          ok = inCidr(ip(pkt.dst), tok[++i]);
          break;
        case '-m':
          i++; // module name; its options follow
          continue;
        case '--ctstate':
          ok = tok[++i].split(',').includes('NEW');
          break;
        case '--match-set':
          ok = setHas(tok[++i], tok[++i]);
          break;
        case '--dports':
          ok = portIn(tok[++i], pkt.dstPort);
          break;
        case '--mark': {
          const [v, m] = tok[++i].split('/').map((x) => parseInt(x, 16));
          ok = (mark & m) === v;
          break;
        }
        case '--icmp-type':
        case '--icmpv6-type': {
          const [ty, code] = tok[++i].split('/').map(Number);
          ok = ty === pkt.icmpType && (code === undefined || code === pkt.icmpCode);
          break;
        }
        case '--comment':
          i++;
          continue;
        default:
          throw new TernError('INTERNAL', `simulate: unknown match ${t}`);
      }
      if (ok === neg) return false;
    }
    return true;
  };
  /** Run a chain; returns a final verdict, or undefined on RETURN / fall-through. */
  const run = (chain: string, depth: number): 'accept' | 'drop' | undefined => {
    if (depth > 32) throw new TernError('INTERNAL', 'simulate: chain loop');
    for (const rule of chains.get(chain) ?? []) {
      n++;
      const tok = rule.match(/"[^"]*"|\S+/g)!;
      const j = tok.findIndex((x) => x === '-j' || x === '-g');
      if (!matches(tok.slice(0, j))) continue;
      const target = tok[j + 1];
      if (target === 'ACCEPT') return 'accept';
      if (target === 'DROP') return 'drop';
      if (target === 'RETURN') return undefined;
      if (target === 'LOG') continue;
      if (target === 'MARK') {
        const [v, m] = tok[j + 3].split('/').map((x) => parseInt(x, 16));
        mark = (mark & ~m) | v;
        continue;
      }
      const v = run(target, depth + 1);
      if (v) return v;
      if (tok[j] === '-g') return undefined; // goto: the called chain's end returns from this one too
    }
    return undefined;
  };
  n++; // the hook rule itself
  const hookRule = rs.hooks.find((h) => h.chain === hook);
  const applies = hookRule && matches((hookRule.match ? hookRule.match.split(' ') : []));
  const v = applies ? run(hookRule!.target, 0) : undefined;
  return { verdict: v ?? 'accept', rulesTraversed: n };
}
