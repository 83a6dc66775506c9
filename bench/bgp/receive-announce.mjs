// BGP benchmark: 100k IPv4 /26 prefixes from BIRD into Tern's RIB and kernel,
// against BIRD receiving the same from BIRD, side by side in one run; the first
// 10k into the kernel; peak RSS of both receivers; Tern originating 100k to
// BIRD against BIRD originating them to BIRD; withdrawing them all as the
// originator, Tern against BIRD; time to Established.
//
//   npm run build && node bench/bgp/receive-announce.mjs [count]
//
// Everything runs in network namespaces created (and removed) here; nothing
// touches the root namespace. Prints one JSON object with the numbers.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// Run as installed: its shebang carries the launcher's V8 flags, which `node ternctl` would drop.
const TERNCTL = path.join(ROOT, 'dist', 'bin', 'ternctl');
const N = Number(process.argv[2] ?? 100_000);
const P = `${process.env.TERN_TEST_PREFIX ?? 'hbb'}${process.pid.toString(36)}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${P}-`));
const children = [];

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (process.env.BENCH_DEBUG) console.error(cmd, args.slice(0, 6).join(' '), '->', r.status, (r.stdout ?? '').slice(0, 300), r.stderr);
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout ?? '';
}
const ns = (name) => `${P}-${name}`;
const inNs = (name, cmd, args, opts) => sh('nsenter', [`--net=/run/netns/${ns(name)}`, '--', cmd, ...args], opts);
function daemon(name, cmd, args) {
  const c = spawn('nsenter', [`--net=/run/netns/${ns(name)}`, '--', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  c.stderr.on('data', (d) => (err = (err + d).slice(-5000)));
  c.errText = () => err;
  children.push(c);
  return c;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(fn, what, timeoutMs = 300_000, everyMs = 20) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(everyMs);
  }
}
const hwmKb = (pid) => Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const prefix = (base, i) => {
  const a = base + i * 64;
  return `${a >>> 24}.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}/26`;
};
const BASE_IN = 10 << 24; // 10.0.0.0 upwards
const BASE_OUT = ((10 << 24) | (128 << 16)) >>> 0; // 10.128.0.0 upwards

function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const n of ['src', 'tern', 'bird']) sh('ip', ['netns', 'del', ns(n)], { allowFail: true });
  fs.rmSync(dir, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => {
  cleanup();
  process.exit(130);
});

try {
  for (const n of ['src', 'tern', 'bird']) {
    sh('ip', ['netns', 'add', ns(n)]);
    sh('ip', ['-n', ns(n), 'link', 'set', 'lo', 'up']);
  }
  const link = (a, aIf, aAddr, b, bIf, bAddr) => {
    sh('ip', ['-n', ns(a), 'link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', ns(b)]);
    sh('ip', ['-n', ns(a), 'addr', 'add', aAddr, 'dev', aIf]);
    sh('ip', ['-n', ns(b), 'addr', 'add', bAddr, 'dev', bIf]);
    sh('ip', ['-n', ns(a), 'link', 'set', aIf, 'up']);
    sh('ip', ['-n', ns(b), 'link', 'set', bIf, 'up']);
    // Static neighbours: on a shared machine the kernel's neighbour table (one limit
    // for all namespaces) can be full, and then ARP here fails and no session comes up.
    const mac = (n, dev) => JSON.parse(sh('ip', ['-n', ns(n), '-j', 'link', 'show', 'dev', dev]))[0].address;
    sh('ip', ['-n', ns(a), 'neigh', 'replace', bAddr.split('/')[0], 'lladdr', mac(b, bIf), 'dev', aIf, 'nud', 'permanent']);
    sh('ip', ['-n', ns(b), 'neigh', 'replace', aAddr.split('/')[0], 'lladdr', mac(a, aIf), 'dev', bIf, 'nud', 'permanent']);
  };
  link('src', 'e1', '198.18.1.1/24', 'tern', 'eth0', '198.18.1.2/24');
  link('src', 'e2', '198.18.2.1/24', 'bird', 'eth0', '198.18.2.2/24');

  const statics = Array.from({ length: N }, (_, i) => `route ${prefix(BASE_IN, i)} blackhole;`).join('\n');
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
  const srcCtl = path.join(dir, 'src.ctl');
  const birdCtl = path.join(dir, 'bird.ctl');
  const ternSock = path.join(dir, 'tern.sock');
  const birdc = (sock, ...a) => sh('birdc', ['-s', sock, ...a], { allowFail: true });
  const imported = (sock, proto) => Number(/Routes:\s+(\d+) imported/.exec(birdc(sock, 'show', 'protocols', 'all', proto))?.[1] ?? 0);
  const ternctl = (...a) => JSON.parse(sh(TERNCTL, ['-o', 'json', 'bgp', ...a, '--socket', ternSock]));
  // Polling talks to the control socket directly: spawning ternctl per poll would dominate the timings.
  const control = (req) =>
    new Promise((resolve, reject) => {
      const c = net.connect(ternSock);
      let buf = '';
      c.on('connect', () => c.write(JSON.stringify(req) + '\n'));
      c.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) {
          c.end();
          resolve(JSON.parse(buf).result);
        }
      });
      c.on('error', reject);
    });
  const kernelCount = (name, proto) => Number(inNs(name, 'sh', ['-c', `ip -4 route show proto ${proto} | wc -l`]).trim());

  daemon('src', 'bird', ['-c', path.join(dir, 'src.conf'), '-s', srcCtl, '-f']);
  await until(() => /static1\s+Static\s+\S+\s+up/.test(birdc(srcCtl, 'show', 'protocols')), 'source BIRD ready', 120_000, 100);

  // --- Tern receiving ---
  const tern = daemon('tern', TERNCTL, ['bgp', 'serve', '--config', path.join(dir, 'tern.json'), '--socket', ternSock, '--log-level', 'warn']);
  await until(() => fs.existsSync(ternSock), 'Tern control socket');
  const t0 = performance.now();
  birdc(srcCtl, 'enable', 'totern');
  await until(async () => (await control({ cmd: 'peers' }))[0].state === 'Established', 'Tern established', 60_000, 5);
  const ternEstablished = performance.now() - t0;
  // The first 10k are counted in the kernel itself, for both receivers.
  let ternFirst10k;
  const ternKernelMark = () => {
    if (ternFirst10k === undefined && kernelCount('tern', '86') >= Math.min(10_000, N)) ternFirst10k = performance.now() - t0;
  };
  await until(async () => (ternKernelMark(), (await control({ cmd: 'stats' })).routes >= N), 'Tern RIB', 300_000, 20);
  const ternRib = performance.now() - t0;
  await until(async () => {
    const s = await control({ cmd: 'stats' });
    ternKernelMark();
    return s.fibApplied >= N && s.fibPending === 0;
  }, 'Tern kernel', 300_000, 20);
  const ternKernel = performance.now() - t0;
  const ternKernelRoutes = kernelCount('tern', '86');
  const ternRssMb = hwmKb(tern.pid) / 1024;

  // --- BIRD receiving from BIRD ---
  const bird = daemon('bird', 'bird', ['-c', path.join(dir, 'bird.conf'), '-s', birdCtl, '-f']);
  await until(() => /kernel1\s+Kernel\s+\S+\s+up/.test(birdc(birdCtl, 'show', 'protocols')), 'receiver BIRD ready');
  const b0 = performance.now();
  birdc(srcCtl, 'enable', 'tobird');
  await until(() => /fromsrc\s+BGP\s+\S+\s+up/.test(birdc(birdCtl, 'show', 'protocols')), 'BIRD established', 60_000, 5);
  const birdEstablished = performance.now() - b0;
  let birdFirst10k;
  const birdKernelMark = () => {
    if (birdFirst10k === undefined && kernelCount('bird', 'bird') >= Math.min(10_000, N)) birdFirst10k = performance.now() - b0;
  };
  await until(() => (birdKernelMark(), imported(birdCtl, 'fromsrc') >= N), 'BIRD RIB', 300_000, 20);
  const birdRib = performance.now() - b0;
  await until(() => (birdKernelMark(), kernelCount('bird', 'bird') >= N), 'BIRD kernel', 300_000, 50);
  const birdKernel = performance.now() - b0;
  const birdRssMb = hwmKb(bird.pid) / 1024;

  // --- Tern announcing to BIRD ---
  const out = path.join(dir, 'out.txt');
  fs.writeFileSync(out, Array.from({ length: N }, (_, i) => prefix(BASE_OUT, i)).join('\n') + '\n');
  const a0 = performance.now();
  ternctl('announce', '--file', out);
  await until(() => imported(srcCtl, 'totern') >= N, 'BIRD received Tern routes', 300_000, 20);
  const ternAnnounce = performance.now() - a0;
  const ternRssAfterAnnounceMb = hwmKb(tern.pid) / 1024;

  // --- withdrawing everything as the originator: Tern to BIRD, then BIRD to BIRD ---
  const w0 = performance.now();
  ternctl('withdraw', '--file', out);
  await until(() => imported(srcCtl, 'totern') === 0, 'BIRD saw Tern withdraw', 300_000, 20);
  const ternWithdraw = performance.now() - w0;
  const v0 = performance.now();
  birdc(srcCtl, 'disable', 'static1');
  await until(() => imported(birdCtl, 'fromsrc') === 0, 'BIRD saw BIRD withdraw', 300_000, 20);
  const birdWithdraw = performance.now() - v0;

  const ms = (x) => Math.round(x);
  console.log(
    JSON.stringify(
      {
        prefixes: N,
        tern: { establishedMs: ms(ternEstablished), ribMs: ms(ternRib - ternEstablished), kernelMs: ms(ternKernel - ternEstablished), first10kKernelMs: ms(ternFirst10k - ternEstablished), kernelRoutes: ternKernelRoutes, peakRssMb: +ternRssMb.toFixed(1), announceToBirdMs: ms(ternAnnounce), withdrawToBirdMs: ms(ternWithdraw), peakRssAfterAnnounceMb: +ternRssAfterAnnounceMb.toFixed(1) },
        // BIRD originating = the source BIRD's routes into the receiving BIRD's RIB, from Established.
        bird: { establishedMs: ms(birdEstablished), ribMs: ms(birdRib - birdEstablished), kernelMs: ms(birdKernel - birdEstablished), first10kKernelMs: ms(birdFirst10k - birdEstablished), peakRssMb: +birdRssMb.toFixed(1), withdrawToBirdMs: ms(birdWithdraw) },
        ratios: {
          ribTernOverBird: +((ternRib - ternEstablished) / (birdRib - birdEstablished)).toFixed(2),
          kernelTernOverBird: +((ternKernel - ternEstablished) / (birdKernel - birdEstablished)).toFixed(2),
          first10kKernelTernOverBird: +((ternFirst10k - ternEstablished) / (birdFirst10k - birdEstablished)).toFixed(2),
          rssTernOverBird: +(ternRssMb / birdRssMb).toFixed(2),
          originateTernOverBird: +(ternAnnounce / (birdRib - birdEstablished)).toFixed(2),
          withdrawTernOverBird: +(ternWithdraw / birdWithdraw).toFixed(2),
        },
      },
      null,
      2,
    ),
  );
} finally {
  cleanup();
}
