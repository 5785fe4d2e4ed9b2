/**
 * What an attention kernel is: the rule that turns a query row's scaled scores over the entries it may see into the
 * weights its output averages the values with. The kernel is a specification, not code that runs fast: each kernel
 * file gives its rule as a plain reference (`weights`, over one row, in f64), which the reference attention
 * (attention/reference.ts) runs and every backend's fast path is tested against (test/attention/kernels.test.ts).
 * A backend reads `spec` and runs its own implementation of the rule.
 */

/** The kernels a backend implements, with their parameters, as attention options carry them. */
export type AttentionKernelSpec = { name: 'softmax' } | { name: 'sigmoid'; bias: number };

export interface AttentionKernel<S extends AttentionKernelSpec = AttentionKernelSpec> {
  readonly spec: S;
  /**
   * Whether the weights of a row are a probability distribution over its visible entries (sum 1). Presses that
   * score entries by the attention they receive read them through observers; a kernel without probabilities has
   * nothing such a press could read, and the press refuses it.
   */
  readonly probabilities: boolean;
  /** Reference rule: the weights of one row from its scaled scores over the visible entries, in place. */
  weights(scores: Float64Array): void;
}

export const SOFTMAX: AttentionKernelSpec = { name: 'softmax' };
