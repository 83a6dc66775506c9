/** A small Prometheus text-format registry: counters, gauges and histograms with labels. */

type Labels = Record<string, string>;
const key = (l: Labels): string => JSON.stringify(Object.entries(l).sort());
const fmtLabels = (l: Labels, extra: Labels = {}): string => {
  const all = { ...l, ...extra };
  const parts = Object.entries(all).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

interface Family {
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  buckets?: number[];
  values: Map<string, { labels: Labels; value: number; counts?: number[]; sum?: number }>;
}

export class Metrics {
  private readonly families = new Map<string, Family>();

  private family(name: string, help: string, type: Family['type'], buckets?: number[]): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { help, type, buckets, values: new Map() };
      this.families.set(name, f);
    }
    return f;
  }

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const f = this.family(name, help, 'counter');
    const k = key(labels);
    const v = f.values.get(k) ?? { labels, value: 0 };
    v.value += by;
    f.values.set(k, v);
  }

  set(name: string, help: string, labels: Labels, value: number): void {
    this.family(name, help, 'gauge').values.set(key(labels), { labels, value });
  }

  /** Replace every sample of a gauge (for state snapshots such as BGP sessions). */
  replaceGauge(name: string, help: string, samples: { labels: Labels; value: number }[]): void {
    const f = this.family(name, help, 'gauge');
    f.values.clear();
    for (const s of samples) f.values.set(key(s.labels), { labels: s.labels, value: s.value });
  }

  observe(name: string, help: string, labels: Labels, value: number, buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]): void {
    const f = this.family(name, help, 'histogram', buckets);
    const k = key(labels);
    const v = f.values.get(k) ?? { labels, value: 0, counts: new Array(buckets.length).fill(0), sum: 0 };
    v.value += 1;
    v.sum = (v.sum ?? 0) + value;
    buckets.forEach((b, i) => {
      if (value <= b) v.counts![i] += 1;
    });
    f.values.set(k, v);
  }

  render(): string {
    const out: string[] = [];
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      for (const v of f.values.values()) {
        if (f.type === 'histogram') {
          f.buckets!.forEach((b, i) => out.push(`${name}_bucket${fmtLabels(v.labels, { le: String(b) })} ${v.counts![i]}`));
          out.push(`${name}_bucket${fmtLabels(v.labels, { le: '+Inf' })} ${v.value}`);
          out.push(`${name}_sum${fmtLabels(v.labels)} ${v.sum}`, `${name}_count${fmtLabels(v.labels)} ${v.value}`);
        } else {
          out.push(`${name}${fmtLabels(v.labels)} ${v.value}`);
        }
      }
    }
    return out.join('\n') + '\n';
  }
}
