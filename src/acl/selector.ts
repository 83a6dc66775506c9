/**
 * Calico selector grammar: all(), global(), has(k), k == "v", k != "v",
 * k in {"a","b"}, k not in {...}, contains / starts with / ends with,
 * !, &&, ||, parentheses. `!=` and `not in` also match labels lacking the key.
 * Parsed once into an AST; `formatSelector` gives the canonical text used in hashes.
 */
export type Selector =
  | { op: 'all' }
  | { op: 'has'; key: string }
  | { op: 'eq' | 'ne' | 'contains' | 'starts' | 'ends'; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'not'; sel: Selector }
  | { op: 'and' | 'or'; sels: Selector[] };

export const ALL: Selector = { op: 'all' };

export class SelectorSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

const KEY = /^[A-Za-z0-9_][A-Za-z0-9_./-]*/;

export function parseSelector(text: string): Selector {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const fail = (msg: string): never => {
    throw new SelectorSyntaxError(`${msg} at offset ${i} in selector ${JSON.stringify(text)}`, i);
  };
  const eat = (tok: string): boolean => {
    ws();
    if (text.startsWith(tok, i)) {
      i += tok.length;
      return true;
    }
    return false;
  };
  const word = (w: string): boolean => {
    ws();
    if (text.startsWith(w, i) && !/[A-Za-z0-9_./-]/.test(text[i + w.length] ?? '')) {
      i += w.length;
      return true;
    }
    return false;
  };
  const key = (): string => {
    ws();
    const m = KEY.exec(text.slice(i));
    if (!m) return fail('expected a label key');
    i += m[0].length;
    return m[0];
  };
  const str = (): string => {
    ws();
    const q = text[i];
    if (q !== '"' && q !== "'") return fail('expected a quoted string');
    const end = text.indexOf(q, i + 1);
    if (end < 0) return fail('unterminated string');
    const v = text.slice(i + 1, end);
    i = end + 1;
    return v;
  };
  const set = (): string[] => {
    if (!eat('{')) fail('expected {');
    const vals: string[] = [];
    if (eat('}')) return vals;
    do vals.push(str());
    while (eat(','));
    if (!eat('}')) fail('expected }');
    return vals;
  };
  const primary = (): Selector => {
    ws();
    if (eat('(')) {
      const e = or();
      if (!eat(')')) fail('expected )');
      return e;
    }
    if (eat('!')) return { op: 'not', sel: primary() };
    if (/^all\s*\(/.test(text.slice(i))) {
      word('all');
      eat('(');
      if (!eat(')')) fail('expected )');
      return ALL;
    }
    if (/^global\s*\(/.test(text.slice(i))) {
      word('global');
      eat('(');
      if (!eat(')')) fail('expected )');
      return ALL;
    }
    if (/^has\s*\(/.test(text.slice(i))) {
      word('has');
      eat('(');
      const k = key();
      if (!eat(')')) fail('expected )');
      return { op: 'has', key: k };
    }
    const k = key();
    if (eat('==')) return { op: 'eq', key: k, value: str() };
    if (eat('!=')) return { op: 'ne', key: k, value: str() };
    if (word('in')) return { op: 'in', key: k, values: set() };
    if (word('not')) {
      if (!word('in')) fail('expected "in" after "not"');
      return { op: 'notin', key: k, values: set() };
    }
    if (word('contains')) return { op: 'contains', key: k, value: str() };
    if (word('starts')) {
      if (!word('with')) fail('expected "with"');
      return { op: 'starts', key: k, value: str() };
    }
    if (word('ends')) {
      if (!word('with')) fail('expected "with"');
      return { op: 'ends', key: k, value: str() };
    }
    return fail('expected an operator');
  };
  const and = (): Selector => {
    const sels = [primary()];
    while (eat('&&')) sels.push(primary());
    return sels.length === 1 ? sels[0] : { op: 'and', sels };
  };
  const or = (): Selector => {
    const sels = [and()];
    while (eat('||')) sels.push(and());
    return sels.length === 1 ? sels[0] : { op: 'or', sels };
  };
  ws();
  if (i === text.length) return ALL; // Calico: an empty selector selects everything
  const e = or();
  ws();
  if (i !== text.length) fail('unexpected input');
  return e;
}

export function matchSelector(sel: Selector, labels: Record<string, string>): boolean {
  switch (sel.op) {
    case 'all':
      return true;
    case 'has':
      return Object.prototype.hasOwnProperty.call(labels, sel.key);
    case 'eq':
      return labels[sel.key] === sel.value;
    case 'ne':
      return labels[sel.key] !== sel.value;
    case 'contains':
      return labels[sel.key]?.includes(sel.value) ?? false;
    case 'starts':
      return labels[sel.key]?.startsWith(sel.value) ?? false;
    case 'ends':
      return labels[sel.key]?.endsWith(sel.value) ?? false;
    case 'in':
      return Object.prototype.hasOwnProperty.call(labels, sel.key) && sel.values.includes(labels[sel.key]);
    case 'notin':
      return !Object.prototype.hasOwnProperty.call(labels, sel.key) || !sel.values.includes(labels[sel.key]);
    case 'not':
      return !matchSelector(sel.sel, labels);
    case 'and':
      return sel.sels.every((s) => matchSelector(s, labels));
    case 'or':
      return sel.sels.some((s) => matchSelector(s, labels));
  }
}

const q = (s: string) => JSON.stringify(s);

/** Canonical text: parses back to an equal AST. */
export function formatSelector(sel: Selector): string {
  switch (sel.op) {
    case 'all':
      return 'all()';
    case 'has':
      return `has(${sel.key})`;
    case 'eq':
      return `${sel.key} == ${q(sel.value)}`;
    case 'ne':
      return `${sel.key} != ${q(sel.value)}`;
    case 'contains':
      return `${sel.key} contains ${q(sel.value)}`;
    case 'starts':
      return `${sel.key} starts with ${q(sel.value)}`;
    case 'ends':
      return `${sel.key} ends with ${q(sel.value)}`;
    case 'in':
      return `${sel.key} in {${sel.values.map(q).join(', ')}}`;
    case 'notin':
      return `${sel.key} not in {${sel.values.map(q).join(', ')}}`;
    case 'not':
      return `!(${formatSelector(sel.sel)})`;
    case 'and':
      return sel.sels.map((s) => `(${formatSelector(s)})`).join(' && ');
    case 'or':
      return sel.sels.map((s) => `(${formatSelector(s)})`).join(' || ');
  }
}

export function andSelectors(...sels: (Selector | undefined)[]): Selector {
  const parts = sels.filter((s): s is Selector => s !== undefined && s.op !== 'all');
  if (parts.length === 0) return ALL;
  return parts.length === 1 ? parts[0] : { op: 'and', sels: parts };
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

/** Kubernetes LabelSelector as a selector; `{}` selects everything. */
export function fromLabelSelector(ls: LabelSelector): Selector {
  const parts: Selector[] = [];
  for (const [k, v] of Object.entries(ls.matchLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) parts.push({ op: 'eq', key: k, value: v });
  for (const e of ls.matchExpressions ?? []) {
    switch (e.operator) {
      case 'In':
        parts.push({ op: 'in', key: e.key, values: [...(e.values ?? [])] });
        break;
      case 'NotIn':
        parts.push({ op: 'notin', key: e.key, values: [...(e.values ?? [])] });
        break;
      case 'Exists':
        parts.push({ op: 'has', key: e.key });
        break;
      case 'DoesNotExist':
        parts.push({ op: 'not', sel: { op: 'has', key: e.key } });
        break;
    }
  }
  return andSelectors(...parts);
}
