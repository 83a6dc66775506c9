/**
 * The JIT warm-up (bgp-speaker/warmup.ts) is only worth its start-up time if
 * the code it compiles survives the first real table. A full table from a real
 * BIRD, after the warm-up, must not deoptimise any compiled code of the
 * per-route path (decoding, RIB, kernel batches, route writer): each such
 * deoptimisation means a recompile on V8's threads in the middle of the burst,
 * which on a 2-core machine took the CPU the first routes needed (BENCHMARKS.md,
 * "First 10k into the kernel").
 *
 * V8's own trace tells: `--trace-deopt-verbose` names the source position of
 * every deoptimisation, and `--no-concurrent-recompilation` compiles on the
 * main thread, so what is optimised when does not depend on the machine's load.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, sh, waitFor, type Netns } from '../sandbox';
import { kernelRoutes, startBird, TERNCTL, type BirdNode } from './harness';

const sb = new Sandbox('bgpw');
const ROUTES = 20_000;
let t: Netns;
let b: Netns;
let bird: BirdNode;
let dir: string;

/** 10.64.0.0/26, 10.64.0.64/26, ...: /26s as a fabric's full table holds them. */
const prefix = (i: number) => `10.${64 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}/26`;

beforeAll(() => {
  t = sb.netns('t');
  b = sb.netns('b');
  sb.link(t, 'eth0', b, 'eth0', { aAddr: '198.18.0.1/24', bAddr: '198.18.0.2/24' });
  // Static neighbours, as bench/bgp does: no ARP on the path of the measured burst.
  const mac = (n: Netns) => n.ipJson<{ address: string }[]>('link', 'show', 'dev', 'eth0')[0].address;
  t.ip('neigh', 'replace', '198.18.0.2', 'lladdr', mac(b), 'dev', 'eth0', 'nud', 'permanent');
  b.ip('neigh', 'replace', '198.18.0.1', 'lladdr', mac(t), 'dev', 'eth0', 'nud', 'permanent');
  dir = sb.tmpdir();
  const statics = Array.from({ length: ROUTES }, (_, i) => `route ${prefix(i)} blackhole;`).join('\n');
  bird = startBird(
    sb,
    b,
    dir,
    'bird',
    `router id 198.18.0.2;
protocol device {}
protocol static s4 { ipv4; ${statics} }
protocol bgp tern { disabled; local 198.18.0.2 as 65002; neighbor 198.18.0.1 as 65001; connect retry time 1; ipv4 { import none; export where source = RTS_STATIC; }; }
`,
  );
});

afterAll(async () => {
  await sb.cleanup();
});

/** Deoptimisations in the trace whose source position is in the per-route path. */
function perRouteDeopts(trace: string): string[] {
  const files = /dist\/src\/(bgp-speaker\/(codec|rib)\/|bgp-speaker\/(connection|speaker|fib)\.js|dataplane\/route-(writer|codec)\.js)/;
  const out: string[] = [];
  const lines = trace.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith('[bailout') || !lines[i].includes('deoptimizing')) continue;
    const at = lines.slice(i + 1, i + 4).find((l) => l.includes(';;; deoptimize at'));
    if (at && files.test(at)) out.push(`${lines[i].slice(0, 160)} ${at.trim()}`);
  }
  return out;
}

describe('the warm-up and the first real table', () => {
  it(`a full table of ${ROUTES} routes from BIRD deoptimises nothing on the per-route path`, async () => {
    await waitFor(() => /s4\s+Static\s+\S+\s+up/.test(bird.birdc('show', 'protocols')) || undefined, { timeoutMs: 60_000, what: `BIRD ready (${bird.daemon.output().slice(-2000)})` });
    const cfgFile = path.join(dir, 'tern.json');
    const socket = path.join(dir, 'tern.sock');
    fs.writeFileSync(
      cfgFile,
      JSON.stringify({ asn: 65001, routerId: '198.18.0.1', families: ['ipv4'], installIntoKernel: true, connectRetryTime: 1, idleHoldTime: 1, peers: [{ address: '198.18.0.2', asn: 65002, importPrefixes: ['10.64.0.0/10'], exportPrefixes: ['10.128.0.0/9'] }] }),
    );
    // The launcher's heap flags (dist/bin/ternctl's shebang), plus the trace.
    const tern = sb.daemon(process.execPath, ['--max-semi-space-size=2', '--heap-growing-percent=25', '--trace-deopt-verbose', '--no-concurrent-recompilation', TERNCTL, 'bgp', 'serve', '--config', cfgFile, '--socket', socket, '--log-level', 'warn'], { netns: t });
    await waitFor(() => fs.existsSync(socket), { timeoutMs: 30_000, what: `control socket (${tern.output().slice(-2000)})` });
    // The socket is made after the warm-up: what the trace holds now is the warm-up's.
    await new Promise((r) => setTimeout(r, 300));
    const before = tern.output().length;
    bird.birdc('enable', 'tern');
    await waitFor(() => kernelRoutes(t, 4, '86').length >= ROUTES || undefined, { timeoutMs: 60_000, what: `${ROUTES} routes in Tern's kernel (${kernelRoutes(t, 4, '86').length} there; ${tern.output().split('\n').filter((l) => l.startsWith('{')).join('\n').slice(-3000)}; ${bird.birdc('show', 'protocols', 'all', 'tern').slice(0, 1500)})` });
    const during = tern.output().slice(before);
    expect(perRouteDeopts(during)).toEqual([]);
  }, 180_000);

  it('IPv4 prefix keys up to /30 are small integers (Smis) in the interpreter as in optimised code', () => {
    // Unoptimised only (--no-opt, no baseline compilers): where a boxed key came from before.
    const ip = path.join(DIST_BIN, '..', 'src', 'bgp-speaker', 'codec', 'ip.js');
    const script = `const { v4PrefixKey } = require(${JSON.stringify(ip)});
      const out = [];
      for (let len = 0; len <= 32; len++) out.push(%IsSmi(v4PrefixKey('198.18.255.255/' + len)));
      process.stdout.write(JSON.stringify(out));`;
    const r = sh(process.execPath, ['--allow-natives-syntax', '--no-opt', '--no-sparkplug', '--no-maglev', '-e', script]);
    expect(r.code, r.stderr).toBe(0);
    const smi = JSON.parse(r.stdout) as boolean[];
    expect(smi.length).toBe(33);
    expect(smi.slice(0, 31)).toEqual(Array(31).fill(true));
  });
});
