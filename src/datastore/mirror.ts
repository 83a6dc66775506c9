/**
 * A prefix's records kept in memory from its watch events (pure: the caller
 * lists and watches). It is seeded from a full list at a revision, then
 * follows the events after that revision, and remembers which keys changed
 * since the caller last took them, so a reconciler can look at those alone.
 *
 * A list in flight races the watch: events that arrive between `beginSeed`
 * and `seed` are kept and replayed on top of the listed items if newer than
 * the list. Anything doubtful (a watch error, an event gap) marks it stale;
 * only a new seed makes it usable again.
 */
import type { KeyValue, WatchEvent } from './types';

export class PrefixMirror {
  /** Key -> value text, as of `revision`. */
  readonly items = new Map<string, string>();
  /** The newest revision reflected; -1 before the first seed. */
  revision = -1;
  /** The revision of the last seed: the list holds every event up to it. */
  private base = -1;
  private changed = new Set<string>();
  private stale = true;
  /** Events seen while a list is in flight (undefined: none in flight). */
  private buffered?: WatchEvent[];

  /** Usable: seeded, and nothing since has cast doubt on it. */
  get ready(): boolean {
    return !this.stale && this.revision >= 0;
  }

  /** A list is about to be read: keep the events that race it. */
  beginSeed(): void {
    this.buffered = [];
  }

  /** Replace everything with a list read at `revision`; the events that raced it and are newer follow. Only those events count as changed. */
  seed(list: Pick<KeyValue, 'key' | 'value'>[], revision: number): void {
    const raced = this.buffered ?? [];
    this.buffered = undefined;
    this.items.clear();
    for (const kv of list) this.items.set(kv.key, kv.value);
    this.revision = this.base = revision;
    this.stale = false;
    this.changed.clear();
    for (const e of raced) this.apply(e); // changes relative to the list
  }

  /** One watch event, in revision order; those the seed's list already holds are ignored (a transaction's events share one revision). */
  apply(e: WatchEvent): void {
    this.buffered?.push(e);
    if (e.revision <= this.base) return;
    this.revision = Math.max(this.revision, e.revision);
    if (e.type === 'put') this.items.set(e.key, e.value ?? '');
    else this.items.delete(e.key);
    this.changed.add(e.key);
  }

  /** The watch failed or skipped events: the mirror is wrong until the next seed. */
  invalidate(): void {
    this.stale = true;
  }

  /** The keys changed since the last seed or take, with their value now (undefined: deleted); the set starts empty again. */
  takeChanges(): Map<string, string | undefined> {
    const out = new Map<string, string | undefined>();
    for (const k of this.changed) out.set(k, this.items.get(k));
    this.changed.clear();
    return out;
  }
}
