/**
 * Sigmoid attention (Ramapuram et al. 2024, "Theory, Analysis, and Best Practices for Sigmoid Self-Attention";
 * apple/ml-sigmoid-attention): w = σ(q·k/√d + b) for each visible entry, with no normalisation over the row —
 * weights are independent, do not sum to 1, and so are not probabilities an observer may read.
 *
 * The bias b: the paper prescribes b = −log n, so that at initialisation each weight is about 1/n, as softmax's
 * uniform row would be. Which n: the paper's LM experiments (axlearn's `SigmoidAttention`, whose config field
 * `seq_len` is "Maximum sequence length used", with logits biased by −log(seq_len)) use the training sequence
 * length, one constant for every query whatever its position — not the number of entries a causal query sees.
 * Attend follows that: the default is b = −log(max_position_embeddings), the model's trained context, fixed for the
 * model; `bias=` overrides it (a checkpoint trained with another n must be run with its own b).
 */
import type { AttentionKernel } from './kernel.js';

export function defaultSigmoidBias(maxPositions: number): number {
  return -Math.log(maxPositions);
}

export function sigmoidKernel(bias: number): AttentionKernel<{ name: 'sigmoid'; bias: number }> {
  return {
    spec: { name: 'sigmoid', bias },
    probabilities: false,
    weights(scores: Float64Array): void {
      for (let i = 0; i < scores.length; i++) scores[i] = 1 / (1 + Math.exp(-(scores[i] + bias)));
    },
  };
}
