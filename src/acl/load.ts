/** Read policy files or directories (I/O edge of the parser). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PolicyFileError, type FileProblem } from './errors';
import { parsePolicyText, type Resource } from './parse';

const EXT = /\.(ya?ml|json)$/i;

/** Files to read for a path: the file itself, or a directory's policy files sorted by name. */
export function policyFiles(p: string): string[] {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return [p];
  return fs
    .readdirSync(p)
    .filter((f) => EXT.test(f))
    .sort()
    .map((f) => path.join(p, f));
}

/** Parse every file; any problem in any file rejects all of them. */
export function loadPolicyPaths(paths: string[]): Resource[] {
  const problems: FileProblem[] = [];
  const out: Resource[] = [];
  const seen = new Map<string, string>();
  for (const p of paths) {
    for (const file of policyFiles(p)) {
      try {
        for (const r of parsePolicyText(fs.readFileSync(file, 'utf8'), file)) {
          const k = `${r.kind}/${r.key}`;
          const line = (r.value as { origin?: { line: number } }).origin?.line ?? 1;
          if (seen.has(k)) problems.push({ file, line, field: 'metadata.name', message: `${r.kind} ${r.key} is also defined in ${seen.get(k)}` });
          seen.set(k, file);
          out.push(r);
        }
      } catch (e) {
        if (e instanceof PolicyFileError) problems.push(...e.problems);
        else throw e;
      }
    }
  }
  if (problems.length) throw new PolicyFileError(problems);
  return out;
}
