// BGP benchmark: 100k IPv4 /26 prefixes from BIRD into Tern's RIB and kernel,
// against BIRD receiving the same from BIRD, side by side in one run; the first
// 10k into the kernel; peak RSS of both receivers; Tern originating 100k to
// BIRD against BIRD originating them to BIRD; withdrawing them all as the
// originator, Tern against BIRD; time to Established.
//
//   npm run build && node bench/bgp/receive-announce.mjs [count]
//   TERNCTL=/path/to/other/dist/bin/ternctl ...   (another build as the Tern side)
//
// Both receivers are timed from Established as the source BIRD reports it, and
// the first 10k are polled alone (every 2 ms, from the kernel's trie statistics,
// see common.mjs) before the RIB and whole-table polls start, so those
// (Tern's `stats` walks its whole RIB) cannot slow one receiver's first burst;
// "in RIB" therefore never reads below the first 10k. For the first 10k alone,
// in many alternating rounds, see first-10k.mjs.
//
// Everything runs in network namespaces created (and removed) here; nothing
// touches the root namespace. Prints one JSON object with the numbers.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE_OUT, established as srcEstablished, prefix, prefixCount, sh, until, writeConfigs, daemonIn } from './common.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// Run as installed: its shebang carries the launcher's V8 flags, which `node ternctl` would drop.
const TERNCTL = process.env.TERNCTL ?? path.join(ROOT, 'dist', 'bin', 'ternctl');
const N = Number(process.argv[2] ?? 100_000);
const P = `${process.env.TERN_TEST_PREFIX ?? 'hbb'}${process.pid.toString(36)}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${P}-`));
const children = [];

const ns = (name) => `${P}-${name}`;
const inNs = (name, cmd, args, opts) => sh('nsenter', [`--net=/run/netns/${ns(name)}`, '--', cmd, ...args], opts);
const daemon = (name, cmd, args) => daemonIn(ns(name), cmd, args, (c) => children.push(c));
const hwmKb = (pid) => Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
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

  writeConfigs(dir, N);
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
  // Established as the source BIRD sees it, for both receivers: one method, and neither receiver is asked.
  const established = (proto) => srcEstablished(srcCtl, proto);
  const kernelCount = (name, proto) => Number(inNs(name, 'sh', ['-c', `ip -4 route show proto ${proto} | wc -l`]).trim());

  daemon('src', 'bird', ['-c', path.join(dir, 'src.conf'), '-s', srcCtl, '-f']);
  await until(() => /static1\s+Static\s+\S+\s+up/.test(birdc(srcCtl, 'show', 'protocols')), 'source BIRD ready', 120_000, 100);

  // --- Tern receiving ---
  const tern = daemon('tern', TERNCTL, ['bgp', 'serve', '--config', path.join(dir, 'tern.json'), '--socket', ternSock, '--log-level', 'warn']);
  await until(() => fs.existsSync(ternSock), 'Tern control socket');
  const ternBase = prefixCount(tern.pid);
  const t0 = performance.now();
  birdc(srcCtl, 'enable', 'totern');
  await until(() => established('totern'), 'Tern established', 60_000, 2);
  const ternEstablished = performance.now() - t0;
  await until(() => prefixCount(tern.pid) - ternBase >= Math.min(10_000, N), 'Tern first 10k', 300_000, 2);
  const ternFirst10k = performance.now() - t0;
  await until(async () => (await control({ cmd: 'stats' })).routes >= N, 'Tern RIB', 300_000, 20);
  const ternRib = performance.now() - t0;
  await until(async () => {
    const s = await control({ cmd: 'stats' });
    return s.fibApplied >= N && s.fibPending === 0;
  }, 'Tern kernel', 300_000, 20);
  const ternKernel = performance.now() - t0;
  const ternKernelRoutes = kernelCount('tern', '86');
  const ternRssMb = hwmKb(tern.pid) / 1024;

  // --- BIRD receiving from BIRD ---
  const bird = daemon('bird', 'bird', ['-c', path.join(dir, 'bird.conf'), '-s', birdCtl, '-f']);
  await until(() => /kernel1\s+Kernel\s+\S+\s+up/.test(birdc(birdCtl, 'show', 'protocols')), 'receiver BIRD ready');
  const birdBase = prefixCount(bird.pid);
  const b0 = performance.now();
  birdc(srcCtl, 'enable', 'tobird');
  await until(() => established('tobird'), 'BIRD established', 60_000, 2);
  const birdEstablished = performance.now() - b0;
  await until(() => prefixCount(bird.pid) - birdBase >= Math.min(10_000, N), 'BIRD first 10k', 300_000, 2);
  const birdFirst10k = performance.now() - b0;
  await until(() => imported(birdCtl, 'fromsrc') >= N, 'BIRD RIB', 300_000, 20);
  const birdRib = performance.now() - b0;
  await until(() => kernelCount('bird', 'bird') >= N, 'BIRD kernel', 300_000, 50);
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
