/**
 * Softmax attention (Vaswani et al. 2017): w = exp(s − max s) / Σ exp(s − max s) over the visible entries, with
 * s = q·k / √d. The kernel every released checkpoint was trained with, and the default.
 */
import type { AttentionKernel } from './kernel.js';

export const softmaxKernel: AttentionKernel<{ name: 'softmax' }> = {
  spec: { name: 'softmax' },
  probabilities: true,
  weights(scores: Float64Array): void {
    let max = -Infinity;
    for (const s of scores) max = Math.max(max, s);
    let sum = 0;
    for (let i = 0; i < scores.length; i++) sum += scores[i] = Math.exp(scores[i] - max);
    for (let i = 0; i < scores.length; i++) scores[i] /= sum;
  },
};
