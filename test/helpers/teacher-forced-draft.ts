/**
 * A draft model whose greedy continuation of a prompt is given: every forward runs the real draft (its cache, its
 * attention and the observers see what they would), but the logits that predict the token at prompt position
 * n + k are replaced by a one-hot of `tokens[k]`, so that greedyLookahead (prompt/lookahead.ts) drafts exactly those
 * tokens. The official-code oracles (speckv-oracle, specpc-oracle) use it so that a near-tie the two
 * implementations break differently cannot change what the method scores; whether the draft itself agrees is
 * checked on its own. Forwards that predict no recorded token (the prompt's earlier chunks, steps past the end)
 * keep the real logits.
 */
import assert from 'node:assert/strict';
import type { LoadedModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';

export function teacherForcedDraft(draft: LoadedModel, promptLength: number, tokens: readonly number[]): LoadedModel {
  const real = draft.model;
  const vocab = real.config.vocabSize;
  const model: CausalLM = {
    config: real.config,
    backend: real.backend,
    tokenizer: real.tokenizer,
    makeCache: (dtype) => real.makeCache(dtype),
    outputProjection: (layer) => real.outputProjection(layer),
    forwardBatch: () => {
      throw new Error('teacherForcedDraft: forwardBatch is not used by the lookahead');
    },
    forward(ids, cache, opts) {
      const logits = real.forward(ids, cache, opts);
      // The forward's last row predicts the token at cache.nextPosition: lookahead token nextPosition − n.
      const k = cache.nextPosition - promptLength;
      if (k < 0 || k >= tokens.length) return logits;
      if (!opts?.lastOnly) throw new Error('teacherForcedDraft: the lookahead asks for the last row only');
      const forced = new Float32Array(vocab);
      forced[tokens[k]] = 1;
      return real.backend.upload([1, vocab], forced);
    },
  };
  return { ...draft, model };
}

/**
 * Attend's greedy tokens `got` agree with the official `want` up to the first official near-tie (a step whose top-2
 * logit margin is < 1e-3), after which either implementation may take the other branch.
 */
export function assertDraftAgrees(got: readonly number[], want: readonly number[], margins: readonly number[], what: string): void {
  const tie = margins.findIndex((m) => m < 1e-3);
  const upTo = tie < 0 ? want.length : tie;
  assert.deepEqual(got.slice(0, upTo), want.slice(0, upTo), `${what}: the draft's greedy tokens differ from the official`);
  if (tie < 0) assert.equal(got.length, want.length, `${what}: the draft's lookahead has another length`);
}
