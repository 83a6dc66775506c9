/**
 * ternctl: the operator CLI. Each area registers its nouns from its own
 * module (cli/<area>.ts exporting `register(program)`), so this file only
 * composes them and maps errors to exit codes and printed errors once.
 */
import type { Command } from 'commander';
import { register as registerNode, registerStatus } from './node';
import { register as registerEndpoint } from './endpoint';
import { register as registerBgp } from './bgp';
import { register as registerDoctor } from './doctor';
import { register as registerPolicy } from './policy';
import { register as registerIpam } from './ipam';
import { register as registerResources } from './resources';
import { FORMATS, emit, example, examplesOf } from './output';
import { exitWith, newProgram, runProgram } from './run-program';
import { formatVersion, versionInfo } from './version';
import { bashCompletion, optionValues } from './completion';

export { exitCodeFor } from './output';

type Register = (program: Command) => void;
const registrations: Register[] = [
  // Each area adds its register function here.
  registerResources,
  registerNode,
  registerStatus,
  registerEndpoint,
  registerBgp,
  registerDoctor,
  registerPolicy,
  registerIpam,
];

/** Every command without subcommands, depth first. */
export function leaves(cmd: Command): Command[] {
  return cmd.commands.length ? cmd.commands.flatMap(leaves) : [cmd];
}

export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function registerMeta(program: Command): void {
  example(program.command('version').description('version, git commit, Node version and supported CNI spec versions'), 'ternctl version', 'ternctl version -o json').action(
    (_o, cmd: Command) => {
      const v = versionInfo();
      emit(cmd, v, () => formatVersion(v));
    },
  );
  const completion = program.command('completion').description('shell completion scripts, generated from the command tree');
  example(completion.command('bash').description('print the bash completion script'), 'ternctl completion bash > /etc/bash_completion.d/ternctl', 'source <(ternctl completion bash)').action(() => {
    process.stdout.write(bashCompletion(program));
  });
}

export function buildProgram(): Command {
  const program = newProgram()
    .description('Operate Tern: routed L3 container networking (CNI, IPAM, BGP, ACL)')
    .version(formatVersion(versionInfo()).trimEnd(), '--version', 'print the version (as "ternctl version" does)')
    .showHelpAfterError('(ternctl --help lists the commands, ternctl COMMAND --help shows one)');
  optionValues.set('--output', [...FORMATS]);
  for (const r of registrations) r(program);
  registerMeta(program);
  program.addHelpText('after', () => {
    const rows = leaves(program).map((c) => [commandPath(c), examplesOf.get(c)?.[0] ?? '']);
    const w = Math.max(...rows.map((r) => r[0].length));
    return `\nCommands, one example each ("ternctl COMMAND --help" for more):\n${rows.map(([p, e]) => `  ${p.padEnd(w)}  ${e}`).join('\n')}\n\nExit codes: 0 ok, 1 failed, 2 usage or invalid input, 3 not found, 4 datastore unavailable.\n`;
  });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  return runProgram(buildProgram(), argv);
}

/** Entry for dist/bin/ternctl. */
export function run(): void {
  exitWith(main(process.argv));
}
