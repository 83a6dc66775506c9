// BGP benchmark: the first 10k routes of a full table into the kernel, Tern
// against BIRD, in alternating rounds, each receiver a fresh process in a fresh
// namespace fed by the same source BIRD (a cold start each time, as after a
// restart). Prints every round, then the median and range per receiver.
//
//   npm run build && node bench/bgp/first-10k.mjs [rounds=10] [prefixes=100000] [first=10000]
//   REF_TERNCTL=/path/to/other/dist/bin/ternctl ...   (another build as a third receiver)
//
// Both receivers are timed the same way: from the instant the source BIRD
// reports the session Established (birdc on the source, polled every 2 ms, so
// neither receiver is asked anything) until the receiver's namespace holds
// `first` routes, counted from the kernel's trie statistics (common.mjs).
// Per round it also reports how long the receiver's main thread ran on a CPU
// and waited for one (schedstat), and the CPU of the whole process: Tern's
// V8 threads compile and collect garbage beside the main thread.
// Everything runs in network namespaces created (and removed) here.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { established as srcEstablished, prefixCount, sh, until, writeConfigs, daemonIn } from './common.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// Run as installed: its shebang carries the launcher's V8 flags, which `node ternctl` would drop.
const TERNCTL = process.env.TERNCTL ?? path.join(ROOT, 'dist', 'bin', 'ternctl');
// Optional: another build's ternctl (e.g. the base commit's), run as a third receiver in every round.
const REF_TERNCTL = process.env.REF_TERNCTL;
const ROUNDS = Number(process.argv[2] ?? 10);
const N = Number(process.argv[3] ?? 100_000);
const FIRST = Number(process.argv[4] ?? 10_000);
const P = `${process.env.TERN_TEST_PREFIX ?? 'hbf'}${process.pid.toString(36)}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${P}-`));
const children = new Set();

const ns = (name) => `${P}-${name}`;
const daemon = (name, cmd, args) => daemonIn(ns(name), cmd, args, (c) => children.add(c));
async function stop(c) {
  if (c.exitCode === null && c.signalCode === null) {
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  }
  children.delete(c);
}
/** Nanoseconds the receiver's main thread ran on a CPU and waited for one (its schedstat); CPU ticks of the whole process. */
function cpuOf(pid) {
  const [run, wait] = fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { run, wait, ticks: Number(stat[11]) + Number(stat[12]) };
}

function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const n of ['src', ...Object.keys(SIDES)]) sh('ip', ['netns', 'del', ns(n)], { allowFail: true });
  fs.rmSync(dir, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => {
  cleanup();
  process.exit(130);
});

const SIDES = {
  bird: { proto: 'tobird', srcAddr: '198.18.2.1', addr: '198.18.2.2', srcIf: 'e2' },
  tern: { proto: 'totern', srcAddr: '198.18.1.1', addr: '198.18.1.2', srcIf: 'e1', bin: TERNCTL },
};
if (REF_TERNCTL) SIDES.ref = { ...SIDES.tern, bin: REF_TERNCTL };

function addNs(n) {
  sh('ip', ['netns', 'add', ns(n)]);
  sh('ip', ['-n', ns(n), 'link', 'set', 'lo', 'up']);
}
/** The receiver's namespace, linked to the source (static neighbours: the shared neighbour table may be full). */
function addReceiverNs(side) {
  const s = SIDES[side];
  addNs(side);
  sh('ip', ['-n', ns('src'), 'link', 'add', s.srcIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(side)]);
  sh('ip', ['-n', ns('src'), 'addr', 'add', `${s.srcAddr}/24`, 'dev', s.srcIf]);
  sh('ip', ['-n', ns(side), 'addr', 'add', `${s.addr}/24`, 'dev', 'eth0']);
  sh('ip', ['-n', ns('src'), 'link', 'set', s.srcIf, 'up']);
  sh('ip', ['-n', ns(side), 'link', 'set', 'eth0', 'up']);
  const mac = (n, dev) => JSON.parse(sh('ip', ['-n', ns(n), '-j', 'link', 'show', 'dev', dev]))[0].address;
  sh('ip', ['-n', ns('src'), 'neigh', 'replace', s.addr, 'lladdr', mac(side, 'eth0'), 'dev', s.srcIf, 'nud', 'permanent']);
  sh('ip', ['-n', ns(side), 'neigh', 'replace', s.srcAddr, 'lladdr', mac('src', s.srcIf), 'dev', 'eth0', 'nud', 'permanent']);
}

const srcCtl = path.join(dir, 'src.ctl');
const birdc = (sock, ...a) => sh('birdc', ['-s', sock, ...a], { allowFail: true });
const established = (proto) => srcEstablished(srcCtl, proto);

async function round(side, i) {
  addReceiverNs(side);
  let c;
  try {
    if (side !== 'bird') {
      const sock = path.join(dir, `${side}${i}.sock`);
      c = daemon(side, SIDES[side].bin, ['bgp', 'serve', '--config', path.join(dir, 'tern.json'), '--socket', sock, '--log-level', 'warn']);
      await until(() => fs.existsSync(sock), 'Tern control socket', 60_000, 10);
    } else {
      const ctl = path.join(dir, `bird${i}.ctl`);
      c = daemon('bird', 'bird', ['-c', path.join(dir, 'bird.conf'), '-s', ctl, '-f']);
      await until(() => /kernel1\s+Kernel\s+\S+\s+up/.test(birdc(ctl, 'show', 'protocols')), 'receiver BIRD ready', 60_000, 10);
    }
    const base = prefixCount(c.pid);
    birdc(srcCtl, 'enable', SIDES[side].proto);
    await until(() => established(SIDES[side].proto), `${side} established`, 60_000, 2);
    const t0 = performance.now();
    const cpu0 = cpuOf(c.pid);
    await until(() => prefixCount(c.pid) - base >= FIRST, `${side}: ${FIRST} routes in the kernel`, 120_000, 2);
    const ms = performance.now() - t0;
    const cpu1 = cpuOf(c.pid);
    const cpuMs = (cpu1.run - cpu0.run) / 1e6;
    const waitMs = (cpu1.wait - cpu0.wait) / 1e6;
    const processMs = ((cpu1.ticks - cpu0.ticks) * 1000) / 100;
    return { ms, cpuMs, waitMs, processMs };
  } finally {
    birdc(srcCtl, 'disable', SIDES[side].proto);
    if (c) await stop(c);
    sh('ip', ['-n', ns('src'), 'link', 'del', SIDES[side].srcIf], { allowFail: true });
    sh('ip', ['netns', 'del', ns(side)], { allowFail: true });
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

try {
  addNs('src');
  writeConfigs(dir, N);
  daemon('src', 'bird', ['-c', path.join(dir, 'src.conf'), '-s', srcCtl, '-f']);
  await until(() => /static1\s+Static\s+\S+\s+up/.test(birdc(srcCtl, 'show', 'protocols')), 'source BIRD ready', 120_000, 100);

  const sides = Object.keys(SIDES);
  const times = Object.fromEntries(sides.map((s) => [s, []]));
  const cpu = Object.fromEntries(sides.map((s) => [s, []]));
  for (let i = 1; i <= ROUNDS; i++) {
    // Each round starts with a different receiver (with two: BIRD first in odd rounds).
    const k = (i - 1) % sides.length;
    for (const side of [...sides.slice(k), ...sides.slice(0, k)]) {
      const { ms, cpuMs, waitMs, processMs } = await round(side, i);
      times[side].push(ms);
      cpu[side].push(cpuMs);
      console.error(`round ${i} ${side}: ${Math.round(ms)} ms (main thread on a CPU ${Math.round(cpuMs)} ms, waiting for one ${Math.round(waitMs)} ms; process CPU ${processMs} ms)`);
    }
  }
  const summary = (side) => {
    const xs = times[side];
    return { medianMs: Math.round(median(xs)), minMs: Math.round(Math.min(...xs)), maxMs: Math.round(Math.max(...xs)), runsMs: xs.map(Math.round), cpuMedianMs: Math.round(median(cpu[side])), cpuMs: cpu[side].map(Math.round) };
  };
  const ratios = (side) => times[side].map((t, i) => t / times.bird[i]);
  const over = (side) => ({ medianOfRatios: +median(ratios(side)).toFixed(2), ratioOfMedians: +(median(times[side]) / median(times.bird)).toFixed(2), perRound: ratios(side).map((r) => +r.toFixed(2)) });
  console.log(
    JSON.stringify(
      {
        prefixes: N,
        first: FIRST,
        rounds: ROUNDS,
        loadAverage: os.loadavg().map((x) => +x.toFixed(2)),
        tern: summary('tern'),
        bird: summary('bird'),
        ternOverBird: over('tern'),
        ...(REF_TERNCTL && { ref: summary('ref'), refOverBird: over('ref') }),
      },
      null,
      2,
    ),
  );
} finally {
  cleanup();
}
