/** Run ternctl in-process through the real program; stdout, stderr and the exit code. */
import { main } from '../../src/cli/main';

export interface Run {
  code: number;
  out: string;
  err: string;
}

export async function ternctl(...args: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const ow = process.stdout.write;
  const ew = process.stderr.write;
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(['node', 'ternctl', ...args]), out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}
