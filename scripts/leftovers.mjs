#!/usr/bin/env node
// Leftover-process check for .ci/run (and anyone who wants it).
//   leftovers.mjs snapshot        prints "pid starttime comm" for every process now
//   leftovers.mjs check < SNAP    prints the processes this run left behind:
//     - any process whose environment carries this run's TERN_CI_RUN marker, or
//     - a daemon of a kind tests start (bird, etcd, qemu, tern, ...) that was not
//       in the snapshot (pid and start time), for those started with a clean env.
//   Processes in the snapshot never count; this process and its ancestors neither.
import * as fs from 'node:fs';

const DAEMONS = /^(bird|gobgpd|etcd|iperf3|zebra|bgpd|watchfrr|bfdd|linux\.uml|qemu-system-x86|tern|ternctl|tern-standalone|tcpdump|podman|conmon)$/;

function proc(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    return { pid, comm, state: f[0], ppid: Number(f[1]), start: f[19] };
  } catch {
    return undefined; // gone meanwhile
  }
}

function all() {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((d) => proc(Number(d))).filter((p) => p);
}

const cmd = process.argv[2];
if (cmd === 'snapshot') {
  for (const p of all()) console.log(`${p.pid} ${p.start} ${p.comm}`);
} else if (cmd === 'check') {
  const before = new Set(fs.readFileSync(0, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').slice(0, 2).join(' ')));
  const marker = process.env.TERN_CI_RUN ? `TERN_CI_RUN=${process.env.TERN_CI_RUN}` : undefined;
  const mine = new Set();
  for (let p = proc(process.pid); p && p.pid > 1; p = proc(p.ppid)) mine.add(p.pid);
  for (const p of all()) {
    if (mine.has(p.pid) || p.state === 'Z' || before.has(`${p.pid} ${p.start}`)) continue;
    let env = '';
    try {
      env = fs.readFileSync(`/proc/${p.pid}/environ`, 'utf8');
    } catch {
      /* kernel thread or gone */
    }
    const marked = marker !== undefined && env.split('\0').includes(marker);
    if (marked || DAEMONS.test(p.comm)) console.log(`${p.pid} ${p.comm}${marked ? '' : ' (not marked, new since the run began)'}`);
  }
} else {
  console.error('usage: leftovers.mjs snapshot | check < snapshot');
  process.exit(2);
}
