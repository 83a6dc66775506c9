/** Entry of dist/bin/ternctl: the operator CLI (commands in src/cli/). */
import { exitWith, runProgram } from '../cli/run-program';

export function run(): void {
  // `bgp serve` runs for days: it loads its one command, not every area of the CLI (src/cli/bgp-serve.ts).
  if (process.argv[2] === 'bgp' && process.argv[3] === 'serve') {
    exitWith(import('../cli/bgp-serve').then((m) => runProgram(m.buildServeProgram(), process.argv)));
    return;
  }
  exitWith(import('../cli/main').then((m) => m.main(process.argv)));
}
