// In-process cost of the launcher's V8 flags: decode, import, decide and flush
// 100k IPv4 /26 routes from pre-built UPDATEs (no sockets, no kernel), five
// rounds, in one child per flag set. Prints best wall time, total CPU and
// peak RSS (VmHWM) per flag set, so memory and CPU are compared together.
//
//   npm run build && node bench/bgp/rib-flags.mjs [count]
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const N = Number(process.argv[2] ?? 100_000);
const FLAG_SETS = [[], ['--max-semi-space-size=1'], ['--max-semi-space-size=1', '--heap-growing-percent=25'], ['--max-semi-space-size=1', '--optimize-for-size']];

const child = `
const c = require(${JSON.stringify(path.join(ROOT, 'dist/src/bgp-speaker/codec'))});
const { Rib } = require(${JSON.stringify(path.join(ROOT, 'dist/src/bgp-speaker/rib'))});
const N = ${N}, o = { as4: true };
const pfx = (i) => { const a = (10 << 24) + i * 64; return (a >>> 24) + '.' + ((a >> 16) & 255) + '.' + ((a >> 8) & 255) + '.' + (a & 255) + '/26'; };
const msgs = c.buildAnnouncements(c.IPV4_UNICAST, { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '198.18.1.1' }, Array.from({ length: N }, (_, i) => ({ prefix: pfx(i) })), o);
const cpu0 = process.cpuUsage();
let best = Infinity;
for (let r = 0; r < 5; r++) {
  const rib = new Rib({ asn: 65010, routerId: '198.18.1.2' });
  rib.addPeer({ id: 'p', address: '198.18.1.1', asn: 65001, selfNextHop: {}, importPrefixes: [{ prefix: '10.0.0.0/9' }], exportPrefixes: [{ prefix: '10.128.0.0/9' }] });
  rib.peerUp('p', { routerId: '198.18.1.1', families: [c.IPV4_UNICAST] });
  rib.flush();
  const t = process.hrtime.bigint();
  let fib = 0;
  for (let i = 0; i < msgs.length; i++) {
    rib.applyUpdate('p', c.interpretUpdate(c.decodeMessage(msgs[i], o), o).families);
    if (i % 10 === 9) { rib.flush(); fib += rib.takeFib().length; } // about the speaker's early flush every 8192 routes
  }
  rib.flush();
  fib += rib.takeFib().length;
  best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e6);
  if (fib !== N) throw new Error('kernel changes: ' + fib);
}
const cpu = process.cpuUsage(cpu0);
const hwm = Number(/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]);
process.stdout.write(JSON.stringify({ bestMs: Math.round(best), cpuMs: Math.round((cpu.user + cpu.system) / 1000), peakRssMb: +(hwm / 1024).toFixed(1) }));
`;

const results = FLAG_SETS.map((flags) => {
  const r = spawnSync(process.execPath, [...flags, '-e', child], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${flags.join(' ')}: ${r.stderr}`);
  return { flags: flags.join(' ') || '(none)', ...JSON.parse(r.stdout) };
});
console.log(JSON.stringify({ routes: N, results }, null, 2));
