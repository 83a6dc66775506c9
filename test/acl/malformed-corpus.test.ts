/** Malformed policy corpus: each file is rejected whole with the expected line and field. */
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadPolicyPaths, PolicyFileError } from '../../src/acl';

const DIR = path.join(__dirname, 'corpus', 'bad');

function expectation(file: string): { line: number; field: string } {
  const side = `${file}.expect`;
  const text = fs.existsSync(side) ? fs.readFileSync(side, 'utf8') : /^# expect: (.*)$/m.exec(fs.readFileSync(file, 'utf8'))![1];
  const [line, field] = text.trim().split(' ');
  return { line: Number(line), field };
}

describe('malformed policy corpus', () => {
  const files = fs.readdirSync(DIR).filter((f) => /\.(ya?ml|json)$/.test(f));
  it('has a corpus', () => expect(files.length).toBeGreaterThanOrEqual(20));
  for (const f of files) {
    it(f, () => {
      const file = path.join(DIR, f);
      const want = expectation(file);
      let err: unknown;
      try {
        loadPolicyPaths([file]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PolicyFileError);
      const p = (err as PolicyFileError).problems[0];
      expect({ file: p.file, line: p.line, field: p.field }).toEqual({ file, line: want.line, field: want.field });
      expect((err as PolicyFileError).code).toBe('INVALID_CONFIG');
    });
  }

  it('one bad file in a directory rejects the whole directory', () => {
    const dir = fs.mkdtempSync('/tmp/ha-corpus-');
    try {
      fs.copyFileSync(path.join(__dirname, '..', '..', 'src', 'acl', '__golden__', 'k8s-basic.yaml'), path.join(dir, 'a-good.yaml'));
      fs.copyFileSync(path.join(DIR, 'bad-action.yaml'), path.join(dir, 'b-bad.yaml'));
      expect(() => loadPolicyPaths([dir])).toThrow(PolicyFileError);
      fs.rmSync(path.join(dir, 'b-bad.yaml'));
      expect(loadPolicyPaths([dir]).length).toBeGreaterThan(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
