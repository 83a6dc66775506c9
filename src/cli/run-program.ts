/**
 * Running a ternctl program: parse, then map errors to exit codes and printed
 * errors once. Apart from main.ts so that bin/ternctl's `bgp serve` fast path
 * runs its one-command program the same way without loading every area.
 */
import { Command, CommanderError, Option } from 'commander';
import { EXIT, FORMATS, exitCodeFor, printError } from './output';

/** The `ternctl` program with its global options, before any command is added. */
export function newProgram(): Command {
  return new Command('ternctl')
    .option('--datastore <path|urls>', 'datastore: a SQLite path, or comma-separated etcd URLs (env TERN_DATASTORE, then /etc/tern/tern.yaml)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(FORMATS).default('table'))
    .exitOverride();
}

/** -o json asked for anywhere on the command line (errors are then JSON on stdout too). */
function wantsJson(argv: string[]): boolean {
  return argv.some((a, i) => ((a === '-o' || a === '--output') && argv[i + 1] === 'json') || a === '-ojson' || a === '--output=json');
}

export async function runProgram(program: Command, argv: string[]): Promise<number> {
  const json = wantsJson(argv);
  if (json) {
    // Usage errors too: once, as JSON on stdout, instead of commander's text.
    const quiet = (c: Command) => {
      c.configureOutput({ outputError: () => undefined });
      c.showHelpAfterError(false);
      c.commands.forEach(quiet);
    };
    quiet(program);
  }
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return EXIT.ok;
      if (json) process.stdout.write(JSON.stringify({ error: { code: 'USAGE', message: e.message.replace(/^error: /, '') } }) + '\n');
      return EXIT.usage;
    }
    printError(e, json);
    return exitCodeFor(e);
  }
}

/** Exit with the program's code once it finished (or the exit code something set). */
export function exitWith(code: Promise<number>): void {
  void code.then((c) => process.exit(c || Number(process.exitCode ?? 0)));
}
