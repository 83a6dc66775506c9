// What the BGP benches share: running commands, waiting, the source BIRD's table and
// the three daemons' configurations, and counting a namespace's kernel routes.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (process.env.BENCH_DEBUG) console.error(cmd, args.slice(0, 6).join(' '), '->', r.status, (r.stdout ?? '').slice(0, 300), r.stderr);
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout ?? '';
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(fn, what, timeoutMs = 300_000, everyMs = 20) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(everyMs);
  }
}

export const BASE_IN = 10 << 24; // 10.0.0.0 upwards: the source BIRD's table
export const BASE_OUT = ((10 << 24) | (128 << 16)) >>> 0; // 10.128.0.0 upwards: what Tern originates

/** The i-th /26 from `base`. */
export function prefix(base, i) {
  const a = base + i * 64;
  return `${a >>> 24}.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}/26`;
}

/**
 * src.conf (the source BIRD: `n` static routes, sessions to Tern at 198.18.1.2 and to BIRD at
 * 198.18.2.2, both disabled until the bench enables one), bird.conf (the receiving BIRD) and
 * tern.json (the receiving Tern), written into `dir`.
 */
export function writeConfigs(dir, n) {
  const statics = Array.from({ length: n }, (_, i) => `route ${prefix(BASE_IN, i)} blackhole;`).join('\n');
  fs.writeFileSync(
    path.join(dir, 'src.conf'),
    `router id 198.18.1.1;
protocol device {}
protocol static { ipv4; ${statics} }
protocol bgp totern { disabled; local 198.18.1.1 as 65001; neighbor 198.18.1.2 as 65010; ipv4 { import all; export where source = RTS_STATIC; }; }
protocol bgp tobird { disabled; local 198.18.2.1 as 65001; neighbor 198.18.2.2 as 65020; ipv4 { import none; export where source = RTS_STATIC; }; }
`,
  );
  fs.writeFileSync(
    path.join(dir, 'bird.conf'),
    `router id 198.18.2.2;
protocol device {}
protocol kernel { ipv4 { import none; export all; }; }
protocol bgp fromsrc { local 198.18.2.2 as 65020; neighbor 198.18.2.1 as 65001; ipv4 { import all; export none; }; }
`,
  );
  fs.writeFileSync(
    path.join(dir, 'tern.json'),
    JSON.stringify({
      asn: 65010,
      routerId: '198.18.1.2',
      families: ['ipv4'],
      installIntoKernel: true,
      connectRetryTime: 1,
      idleHoldTime: 1,
      peers: [{ address: '198.18.1.1', asn: 65001, importPrefixes: ['10.0.0.0/9'], exportPrefixes: ['10.128.0.0/9'] }],
    }),
  );
}

/** Established as the source BIRD (control socket `srcCtl`) sees its protocol `proto`. */
export const established = (srcCtl, proto) => /\bEstablished\b/.test(sh('birdc', ['-s', srcCtl, 'show', 'protocols', proto], { allowFail: true }));

/**
 * Prefixes in the main table of the namespace `pid` lives in, from the kernel's trie
 * statistics: one small read (the kernel walks the trie and formats no route), where
 * `ip route show | wc -l` forks and formats every route, and /proc/net/route took 8-28 ms a
 * read at 10k routes. With no policy rules the kernel keeps the local table in the main
 * trie, so callers subtract a baseline taken before the receiver starts.
 */
export function prefixCount(pid) {
  try {
    return Number(/Main:[^]*?Prefixes:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/net/fib_triestat`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** A daemon started in namespace `netns` (full name), its stderr's tail kept for errors; `track` gets it for cleanup. */
export function daemonIn(netns, cmd, args, track) {
  const c = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  c.stderr.on('data', (d) => (err = (err + d).slice(-5000)));
  c.errText = () => err;
  track(c);
  return c;
}
