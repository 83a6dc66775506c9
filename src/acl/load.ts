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
  return loadFiles(paths.flatMap(policyFiles)).resources;
}

/**
 * Parse a set of files together. `keepEmpty` maps a file to what it defined
 * when last applied: such a file found empty is one being rewritten in place
 * (truncated, not yet written), so it keeps defining that instead of nothing.
 */
export function loadFiles(files: string[], keepEmpty?: Map<string, Resource[]>): { resources: Resource[]; byFile: Map<string, Resource[]>; keptEmpty: string[] } {
  const problems: FileProblem[] = [];
  const byFile = new Map<string, Resource[]>();
  const keptEmpty: string[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    try {
      const text = fs.readFileSync(file, 'utf8');
      const kept = text.trim() === '' ? keepEmpty?.get(file) : undefined;
      if (kept?.length) keptEmpty.push(file);
      const rs = kept ?? parsePolicyText(text, file);
      for (const r of rs) {
        const k = `${r.kind}/${r.key}`;
        const line = (r.value as { origin?: { line: number } }).origin?.line ?? 1;
        if (seen.has(k)) problems.push({ file, line, field: 'metadata.name', message: `${r.kind} ${r.key} is also defined in ${seen.get(k)}` });
        seen.set(k, file);
      }
      byFile.set(file, rs);
    } catch (e) {
      if (e instanceof PolicyFileError) problems.push(...e.problems);
      else throw e;
    }
  }
  if (problems.length) throw new PolicyFileError(problems);
  return { resources: [...byFile.values()].flat(), byFile, keptEmpty };
}
