/**
 * Composed (kvpress ComposedPress): presses applied one after the other, each to what the one before it kept.
 * Rule: with `presses=A,B,…` and `ratios=rA,rB,…` (one ratio in [0, 1) per press), press A removes its ratio of the
 * layer, n₁ = ⌊n₀·(1 − rA)⌋, as it would alone (its own layer budget and selection included), then B removes its
 * ratio of those, n₂ = ⌊n₁·(1 − rB)⌋, and so on; kvpress's compression ratio of the composition is
 * 1 − Π(1 − rᵢ). Each press sees only the entries the presses before it kept, and the layer's recorded queries
 * (as kvpress hands every press the prompt's hidden states), the last of its own window of them.
 * Attend's budget: under a ratio budget equal to 1 − Π(1 − rᵢ) (within 1e-12) the stages are exactly kvpress's;
 * under any other budget every stage's kept fraction 1 − rᵢ is scaled by one factor, (keep/length / Π(1 − rᵢ))^(1/m)
 * for m presses (a fraction above 1 keeps everything), and the last stage keeps the budget itself — the ratios
 * give how the work is split between the presses, the budget how much is removed; the last stage never keeps more
 * than the budget. (This is what lets the composition compress again per prefill chunk or while decoding without
 * removing its ratios each time.)
 * Defaults: presses 'snapkv,knorm', ratios '0.3,0.2' (kvpress's docstring example is SnapKV 0.3 then ThinK 0.2,
 * a key-channel press Attend does not have: key norm takes its place). Each press runs on its own defaults.
 * As kvpress forbids AdaKV in a composition only because it masks keys, Attend (which removes them) allows presses
 * that select across heads; a press that rewrites kept entries before the drop (merging) is refused, since a
 * stage works on copies; presses that change the cache after a compression (key rerotation) run after all stages.
 * A press that prunes key channels instead of entries (ThinK, Press.keyChannels; kvpress's docstring example
 * SnapKV 0.3 then ThinK 0.2) is a stage too: its ratio is its fraction of key channels, it keeps every entry it
 * receives (it counts 1 in the product above, and is not scaled: under a ratio budget equal to 1 − Π(1 − rᵢ) over
 * the other presses the stages are exactly kvpress's), the stages after it see its pruned keys (kvpress hands them
 * the zeroed keys), and once the runner has kept the composition's entries the real layer's keys are pruned to
 * the channels each such stage chose, in order. kvpress reports the composition's compression_ratio with ThinK's
 * R/2 in the product; Attend's budget counts entries only.
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import type { ModelConfig } from '../models/config.js';
import type { LayerView, Press, PressNeeds } from './press.js';
import { topK } from './press.js';
import { pruneKeyChannels } from './think.js';
import { everything, lastRows, subsetLayer } from './wrapped.js';

/** What one run of the stages chose: per head the kept entries, the last entry stage's scores, and per key-channel stage (in order) its channels. */
interface StageRun {
  kept: Int32Array[];
  scores: Float32Array[];
  channels: (Int32Array | null)[][];
}

export class ComposedPress implements Press {
  readonly name: string;
  readonly needs: PressNeeds;
  readonly observer?: Press['observer'];
  readonly afterCompress?: Press['afterCompress'];
  readonly afterKeep?: Press['afterKeep'];
  /** The last stage that selects entries (the others prune key channels); −1 when every stage prunes channels. */
  private readonly lastEntryStage: number;

  constructor(
    readonly presses: Press[],
    readonly ratios: number[],
  ) {
    if (presses.length === 0) throw new AttendError('composed: option presses must name at least one press');
    if (ratios.length !== presses.length) {
      throw new AttendError(`composed: ${presses.length} presses (${presses.map((p) => p.name).join(', ')}) need ${presses.length} ratios, got ${ratios.length}`);
    }
    ratios.forEach((r) => {
      if (!(r >= 0 && r < 1)) throw new AttendError(`composed: every ratio must be in [0, 1) (the fraction of the entries a press removes), got ${r}`);
    });
    for (const p of presses) {
      if (p.beforeKeep) throw new AttendError(`composed: ${p.name} rewrites the kept entries before the drop; it cannot run as a stage of a composition`);
      if (p.afterKeep && !p.keyChannels) throw new AttendError(`composed: ${p.name} rewrites the kept entries after the drop; it cannot run as a stage of a composition`);
    }
    this.lastEntryStage = presses.map((p) => !p.keyChannels).lastIndexOf(true);
    if (presses.some((p) => p.keyChannels)) this.afterKeep = (view: LayerView) => this.pruneChannels(view);
    this.name = `composed(${presses.map((p) => p.name).join(',')})`;
    const windows = presses.map((p) => p.needs.queryWindow ?? 0);
    this.needs = { queryWindow: Math.max(0, ...windows), attention: presses.some((p) => p.needs.attention) };
    if (presses.some((p) => p.observer)) {
      this.observer = (cache: KVCache, next: AttentionObserver) => presses.reduceRight((n, p) => (p.observer ? p.observer(cache, n) : n), next);
    }
    if (presses.some((p) => p.afterCompress)) {
      this.afterCompress = (cache: KVCache, config: ModelConfig) => presses.forEach((p) => p.afterCompress?.(cache, config));
    }
  }

  /**
   * Each stage's kept fraction of the entries it receives (1 for a stage that prunes key channels), and whether they
   * are kvpress's own (the budget is theirs).
   */
  private fractions(view: LayerView): { fractions: number[]; exact: boolean } {
    const channel = this.presses.map((p) => p.keyChannels !== undefined);
    const kept = this.ratios.map((r, i) => (channel[i] ? 1 : 1 - r));
    const product = kept.reduce((a, b) => a * b, 1);
    const target = 1 - view.ratio;
    const scaled = channel.filter((c) => !c).length;
    if (Math.abs(target - product) <= 1e-12 || scaled === 0) return { fractions: kept, exact: true };
    const factor = (target / product) ** (1 / scaled);
    return { fractions: kept.map((k, i) => (channel[i] ? 1 : Math.min(1, k * factor))), exact: false };
  }

  /**
   * The view stage `i` works on: its share of the budget (⌊received·fraction⌋; the last stage lands on the budget
   * itself unless the stages are kvpress's own), and its own window of the recorded queries.
   */
  private stageView(view: LayerView, i: number, cache: LayerView['cache'], received: number, plan: { fractions: number[]; exact: boolean }): LayerView {
    const last = i === this.lastEntryStage;
    const fraction = plan.fractions[i];
    const share = Math.floor(received * fraction);
    const keep = last ? Math.min(plan.exact ? share : received, view.keep) : share;
    const width = view.config.numHeads * view.config.headDim;
    const window = this.presses[i].needs.queryWindow ?? 0;
    const queries = lastRows(view.queries, window, width);
    // A key-channel stage keeps every entry; its ratio is its fraction of key channels.
    if (this.presses[i].keyChannels) return { ...view, cache, keep: received, ratio: this.ratios[i], uniform: received, queries };
    return { ...view, cache, keep, ratio: 1 - fraction, uniform: received * fraction, queries };
  }

  /**
   * The last press's scores of the entries that reach it (−∞ for those an earlier press dropped): for presses that
   * keep the top entries of each head, the top `keep` of them are what the composition keeps.
   */
  score(view: LayerView): Float32Array[] {
    if (view.cache.heads.every((h) => h.length <= view.keep)) return view.cache.heads.map((h) => new Float32Array(h.length));
    const run = this.run(view);
    this.last = { view, run };
    return run.scores;
  }

  select(view: LayerView, _scores: Float32Array[]): Int32Array[] {
    if (view.cache.heads.every((h) => h.length <= view.keep)) {
      // Nothing to drop; key-channel stages still prune (the entries appended since the last compression).
      this.pending = this.afterKeep ? { view, channels: this.run(view, false).channels } : undefined;
      return everything(view);
    }
    const run = this.last?.view === view ? this.last.run : this.run(view);
    this.last = undefined;
    this.pending = { view, channels: run.channels };
    return run.kept;
  }

  /** The selection made between score and select (the runner asks both of the same view). */
  private last?: { view: LayerView; run: StageRun };
  /** The key channels the key-channel stages chose for the layer being compressed, applied after the keep. */
  private pending?: { view: LayerView; channels: (Int32Array | null)[][] };

  /** After the runner's keep: the real layer's keys pruned to each key-channel stage's channels, in order. */
  private pruneChannels(view: LayerView): boolean {
    const pending = this.pending;
    this.pending = undefined;
    if (!pending || pending.view !== view) return false;
    let changed = false;
    for (const channels of pending.channels) if (pruneKeyChannels(view.cache, channels)) changed = true;
    return changed;
  }

  /**
   * Runs the presses in turn: per head, the entries (indices into the layer) the last one keeps, its scores, and
   * the channels of the key-channel stages. `entries` false: only the key-channel stages run, on every entry.
   */
  private run(view: LayerView, entries = true): StageRun {
    const plan = this.fractions(view);
    let cache = view.cache;
    let received = cache.maxLength();
    // Per head, the indices into the real layer of what the current press receives.
    let map = everything(view);
    const scores = view.cache.heads.map((h) => new Float32Array(h.length).fill(-Infinity));
    const channels: (Int32Array | null)[][] = [];
    this.presses.forEach((press, i) => {
      const sv = this.stageView(view, i, cache, received, plan);
      if (press.keyChannels) {
        const chosen = press.keyChannels(sv);
        channels.push(chosen);
        // The stages after it see its pruned keys, on a copy (kvpress hands them the zeroed keys).
        if (i < this.presses.length - 1) {
          cache = subsetLayer(cache, everything(sv));
          pruneKeyChannels(cache, chosen);
        }
        return;
      }
      if (!entries) return;
      // As the runner runs a press alone: its own layer budget, then its selection or the top entries per head.
      const keep = Math.min(cache.maxLength(), press.layerKeep?.(sv) ?? sv.keep);
      const v = { ...sv, keep };
      const s = press.score(v);
      const kept = press.select ? press.select(v, s) : s.map((x) => topK(x, keep));
      if (i === this.lastEntryStage) s.forEach((x, h) => x.forEach((y, j) => (scores[h][map[h][j]] = y)));
      map = kept.map((k, h) => Int32Array.from(k, (j) => map[h][j]));
      received = Math.max(0, ...kept.map((k) => k.length));
      if (i < this.presses.length - 1) cache = subsetLayer(cache, kept);
    });
    return { kept: map, scores, channels };
  }
}
