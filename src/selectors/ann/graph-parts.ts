/**
 * Building blocks of the graph index (roar-graph.ts), in flat typed arrays so that a build over thousands of keys
 * per head allocates next to nothing per step: neighbour lists with a fixed room per node, the bounded sorted
 * candidate list of a beam search, and a visited-mark array cleared by bumping an epoch.
 */

/** Out-neighbour lists, `room` slots per node. */
export class Adjacency {
  ids: Int32Array;
  len: Int32Array;

  constructor(readonly room: number, nodes = 0) {
    this.ids = new Int32Array(Math.max(1, nodes) * room);
    this.len = new Int32Array(Math.max(1, nodes));
  }

  /** Room for `nodes` nodes (new ones empty). */
  reserve(nodes: number): void {
    if (this.len.length >= nodes) return;
    const n = Math.max(nodes, 2 * this.len.length);
    const ids = new Int32Array(n * this.room);
    ids.set(this.ids);
    const len = new Int32Array(n);
    len.set(this.len);
    this.ids = ids;
    this.len = len;
  }

  row(node: number): Int32Array {
    const at = node * this.room;
    return this.ids.subarray(at, at + this.len[node]);
  }

  has(node: number, id: number): boolean {
    const at = node * this.room;
    for (let i = at, end = at + this.len[node]; i < end; i++) if (this.ids[i] === id) return true;
    return false;
  }

  push(node: number, id: number): void {
    this.ids[node * this.room + this.len[node]++] = id;
  }

  set(node: number, list: ArrayLike<number>, count: number): void {
    const at = node * this.room;
    for (let i = 0; i < count; i++) this.ids[at + i] = list[i];
    this.len[node] = count;
  }

  copy(): Adjacency {
    const a = new Adjacency(this.room);
    a.ids = this.ids.slice();
    a.len = this.len.slice();
    return a;
  }

  links(nodes: number): number {
    let s = 0;
    for (let i = 0; i < nodes; i++) s += this.len[i];
    return s;
  }
}

/** A beam search's candidates: sorted by distance (ties to the lower id), at most `capacity`, with expanded flags. */
export class CandidateList {
  readonly ids: Int32Array;
  readonly dist: Float64Array;
  readonly expanded: Uint8Array;
  size = 0;
  cursor = 0;
  capacity: number;

  constructor(readonly room: number) {
    this.capacity = room;
    this.ids = new Int32Array(room + 1);
    this.dist = new Float64Array(room + 1);
    this.expanded = new Uint8Array(room + 1);
  }

  /** Empties the list and bounds it to `capacity` (≤ room). */
  reset(capacity: number): void {
    this.size = 0;
    this.cursor = 0;
    this.capacity = Math.min(capacity, this.room);
  }

  insert(id: number, d: number): void {
    const n = this.size;
    const cap = this.capacity;
    if (n === cap && (d > this.dist[n - 1] || (d === this.dist[n - 1] && id > this.ids[n - 1]))) return;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (d < this.dist[mid] || (d === this.dist[mid] && id < this.ids[mid])) hi = mid;
      else lo = mid + 1;
    }
    const end = Math.min(n, cap - 1);
    if (end > lo) {
      this.ids.copyWithin(lo + 1, lo, end);
      this.dist.copyWithin(lo + 1, lo, end);
      this.expanded.copyWithin(lo + 1, lo, end);
    }
    this.ids[lo] = id;
    this.dist[lo] = d;
    this.expanded[lo] = 0;
    if (n < cap) this.size++;
    if (lo < this.cursor) this.cursor = lo;
  }

  hasUnexpanded(): boolean {
    return this.cursor < this.size;
  }

  /** The closest unexpanded candidate, now marked expanded. */
  next(): number {
    const at = this.cursor;
    this.expanded[at] = 1;
    while (this.cursor < this.size && this.expanded[this.cursor]) this.cursor++;
    return this.ids[at];
  }
}

/** Visited marks: `mark` a node for the current pass; `clear` starts a new pass in O(1). */
export class VisitedMarks {
  private tags = new Uint32Array(0);
  private epoch = 0;

  clear(nodes: number): void {
    if (this.tags.length < nodes) {
      const grown = new Uint32Array(Math.max(nodes, 2 * this.tags.length));
      grown.set(this.tags);
      this.tags = grown;
    }
    if (++this.epoch === 0xffffffff) {
      this.tags.fill(0);
      this.epoch = 1;
    }
  }

  /** Marks the node; false when it was marked already in this pass. */
  mark(node: number): boolean {
    if (this.tags[node] === this.epoch) return false;
    this.tags[node] = this.epoch;
    return true;
  }
}
