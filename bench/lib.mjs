// Shared bench helpers: namespaces under a unique prefix, removed on exit
// (also on Ctrl-C), and percentile maths. Benchmarks are not tests: they print.
import { spawnSync } from 'node:child_process';
import { ifaceGroup } from '../dist/src/lib/iface-group.js';

export function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r;
}

export class Namespaces {
  constructor(tag) {
    this.prefix = `${process.env.TERN_TEST_PREFIX ?? 'bn'}${tag}${Math.random().toString(16).slice(2, 6)}`; // TERN_TEST_PREFIX: as the tests name theirs
    this.names = [];
    const cleanup = () => this.cleanup();
    process.on('exit', cleanup);
    for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => { cleanup(); process.exit(130); });
  }
  add(name) {
    const n = `${this.prefix}-${name}`;
    sh('ip', ['netns', 'add', n]);
    sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    this.names.push(n);
    return n;
  }
  /** A node namespace with an uplink to a fabric namespace and a default route. */
  node(name) {
    const node = this.add(name);
    const fab = this.add(`${name}f`);
    sh('ip', ['-n', node, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'down0', 'netns', fab]);
    sh('ip', ['-n', node, 'addr', 'add', '192.0.2.11/24', 'dev', 'uplink0']);
    sh('ip', ['-n', fab, 'addr', 'add', '192.0.2.1/24', 'dev', 'down0']);
    sh('ip', ['-n', node, 'link', 'set', 'uplink0', 'up']);
    sh('ip', ['-n', fab, 'link', 'set', 'down0', 'up']);
    sh('ip', ['-n', node, 'route', 'add', 'default', 'via', '192.0.2.1']);
    sh('nsenter', [`--net=/run/netns/${node}`, '--', 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    return node;
  }
  cleanup() {
    for (const n of this.names.splice(0).reverse()) {
      const pids = spawnSync('ip', ['netns', 'pids', n], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean);
      for (const p of pids) try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ }
      spawnSync('ip', ['netns', 'del', n]);
    }
  }
}

export function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export const fmt = (ms) => `${ms.toFixed(1)} ms`;

/**
 * A node namespace and pod namespaces wired as the CNI plugin wires them (veth,
 * proxy ARP, /32 address, 169.254.1.1 gateway, /32 host route), for benches
 * that program the ACL themselves. Names go into `made` as they are created.
 */
export function wireRoutedPods(node, pods, made) {
  const ip = (...a) => sh('ip', a);
  const inNs = (ns, ...a) => sh('nsenter', [`--net=/run/netns/${ns}`, '--', ...a]);
  for (const n of [node, ...pods.map((p) => p.ns)]) {
    ip('netns', 'add', n);
    made.push(n);
    ip('-n', n, 'link', 'set', 'lo', 'up');
  }
  inNs(node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  ip('-n', node, 'route', 'add', 'default', 'dev', 'lo'); // stands in for an uplink: proxy ARP needs a route to 169.254.1.1
  for (const p of pods) {
    ip('-n', node, 'link', 'add', p.host, 'address', 'ee:ee:ee:ee:ee:ee', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p.ns);
    ip('-n', node, 'link', 'set', p.host, 'group', String(ifaceGroup(p.host))); // as the CNI plugin sets it
    inNs(node, 'sysctl', '-qw', `net.ipv4.conf.${p.host}.proxy_arp=1`, `net.ipv4.neigh.${p.host}.proxy_delay=0`);
    ip('-n', node, 'link', 'set', p.host, 'up');
    ip('-n', p.ns, 'link', 'set', 'eth0', 'up');
    ip('-n', p.ns, 'addr', 'add', `${p.ip}/32`, 'dev', 'eth0');
    ip('-n', p.ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
    ip('-n', p.ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
    ip('-n', node, 'route', 'add', `${p.ip}/32`, 'dev', p.host, 'scope', 'link');
  }
}
