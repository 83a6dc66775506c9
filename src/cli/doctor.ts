/** ternctl doctor: which pool modes this node's kernel can run, and what is misconfigured. */
import type { Command } from 'commander';
import { TernError } from '../lib/errors';
import { evaluateDoctor, gatherKernelFacts, renderDoctor, type DoctorReport } from '../overlay';

export function runDoctor(opts: { netnsPath?: string } = {}): DoctorReport {
  return evaluateDoctor(gatherKernelFacts(opts));
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('report which modes this node can run (routed, vxlan, vxlan-crosssubnet, vlan) and what is misconfigured')
    .option('--netns <path>', 'read sysctls inside this network namespace (default: our own)')
    .option('--strict', 'exit 1 on warnings too, not only on errors')
    .addHelpText('after', '\nExamples:\n  ternctl doctor\n  ternctl doctor -o json\n')
    .action((opts: { netns?: string; strict?: boolean }, cmd: Command) => {
      const output = (cmd.optsWithGlobals() as { output?: string }).output ?? 'table';
      const report = runDoctor({ netnsPath: opts.netns });
      process.stdout.write(output === 'json' ? JSON.stringify(report, null, 2) + '\n' : renderDoctor(report));
      const failing = report.problems.filter((p) => p.severity === 'error' || opts.strict);
      if (failing.length > 0) {
        throw new TernError('CHECK_FAILED', `doctor found ${failing.length} problem(s): ${failing.map((p) => `${p.name}: ${p.detail}`).join('; ')}`);
      }
    });
}
