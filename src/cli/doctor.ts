/** ternctl doctor: which pool modes this node's kernel can run, and what is misconfigured. */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { TernError } from '../lib/errors';
import { evaluateDoctor, gatherKernelFacts, renderDoctor, type DoctorReport } from '../overlay';
import { emit, example } from './output';

export function runDoctor(opts: { netnsPath?: string } = {}): DoctorReport {
  // Without this, every sysctl read fails and the report blames forwarding instead of the path.
  if (opts.netnsPath && !fs.existsSync(opts.netnsPath)) throw new TernError('NOT_FOUND', `network namespace ${opts.netnsPath} does not exist`);
  return evaluateDoctor(gatherKernelFacts(opts));
}

export function register(program: Command): void {
  example(
    program
      .command('doctor')
      .description('report which modes this node can run (routed, vxlan, vxlan-crosssubnet, vlan) and what is misconfigured')
      .option('--netns <path>', 'read sysctls inside this network namespace (default: our own)')
      .option('--strict', 'exit 1 on warnings too, not only on errors'),
    'ternctl doctor',
    'ternctl doctor --netns /run/netns/node1 -o json',
  ).action((opts: { netns?: string; strict?: boolean }, cmd: Command) => {
    const report = runDoctor({ netnsPath: opts.netns });
    emit(cmd, report, () => renderDoctor(report));
    const failing = report.problems.filter((p) => p.severity === 'error' || opts.strict);
    if (failing.length > 0) {
      throw new TernError('CHECK_FAILED', `doctor found ${failing.length} problem(s): ${failing.map((p) => `${p.name}: ${p.detail}`).join('; ')}`);
    }
  });
}
