import { TernError } from '../lib/errors';

export interface FileProblem {
  file: string;
  line: number;
  /** Dotted path of the offending field, e.g. spec.ingress[0].ports[1].port. */
  field: string;
  message: string;
}

/** A policy file (or set of files) was rejected whole; `problems` says where. */
export class PolicyFileError extends TernError {
  readonly problems: FileProblem[];
  constructor(problems: FileProblem[]) {
    const first = problems[0];
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    super('INVALID_CONFIG', `${first.file}:${first.line}: ${first.field}: ${first.message}${more}`, {
      details: problems.map(formatProblem).join('\n'),
    });
    this.name = 'PolicyFileError';
    this.problems = problems;
  }
}

export function formatProblem(p: FileProblem): string {
  return `${p.file}:${p.line}: ${p.field}: ${p.message}`;
}
