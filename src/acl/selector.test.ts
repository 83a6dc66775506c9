import { describe, it, expect } from 'vitest';
import { parseSelector, matchSelector, formatSelector, fromLabelSelector, SelectorSyntaxError } from './selector';

const L = { app: 'web', tier: 'front', 'k8s.io/zone': 'z1' };

describe('Calico selector grammar', () => {
  const cases: [string, Record<string, string>, boolean][] = [
    ['all()', {}, true],
    ['', {}, true],
    ['global()', L, true],
    ['has(app)', L, true],
    ['has(db)', L, false],
    ['app == "web"', L, true],
    ["app == 'db'", L, false],
    ['app != "db"', L, true],
    ['db != "x"', L, true], // lacking the key matches !=
    ['app in {"web", "api"}', L, true],
    ['app in {"api"}', L, false],
    ['db in {"x"}', L, false],
    ['app not in {"api"}', L, true],
    ['db not in {"x"}', L, true], // lacking the key matches not in
    ['app not in {"web"}', L, false],
    ['!has(app)', L, false],
    ['!(app == "db")', L, true],
    ['app == "web" && tier == "front"', L, true],
    ['app == "web" && tier == "back"', L, false],
    ['app == "db" || tier == "front"', L, true],
    ['(app == "db" || tier == "front") && !has(x)', L, true],
    ['app == "db" || tier == "back" && has(app)', L, false],
    ['k8s.io/zone == "z1"', L, true],
    ['app contains "e"', L, true],
    ['app starts with "we"', L, true],
    ['app ends with "b"', L, true],
    ['x contains "e"', L, false],
    ['app in {}', L, false],
  ];
  for (const [sel, labels, want] of cases) {
    it(`${JSON.stringify(sel)} -> ${want}`, () => {
      const ast = parseSelector(sel);
      expect(matchSelector(ast, labels)).toBe(want);
      // canonical text round-trips to the same verdict and AST
      const again = parseSelector(formatSelector(ast));
      expect(formatSelector(again)).toBe(formatSelector(ast));
      expect(matchSelector(again, labels)).toBe(want);
    });
  }

  for (const bad of ['app ==', 'app = "x"', '(app == "x"', 'has(', 'app in {"a"', 'app not "x"', '&& x', 'app == "x" junk', "app == 'x"]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      expect(() => parseSelector(bad)).toThrow(SelectorSyntaxError);
    });
  }
});

describe('Kubernetes LabelSelector', () => {
  const cases: [Parameters<typeof fromLabelSelector>[0], Record<string, string>, boolean][] = [
    [{}, {}, true],
    [{ matchLabels: { app: 'web' } }, L, true],
    [{ matchLabels: { app: 'web', tier: 'back' } }, L, false],
    [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }] }, L, true],
    [{ matchExpressions: [{ key: 'db', operator: 'NotIn', values: ['x'] }] }, L, true],
    [{ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, L, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, L, false],
  ];
  cases.forEach(([ls, labels, want], i) =>
    it(`case ${i}`, () => {
      expect(matchSelector(fromLabelSelector(ls), labels)).toBe(want);
    }),
  );
});
