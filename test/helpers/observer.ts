/** Watching the attention blocks a model emits without changing what its observer does. */
import type { AttentionBlock, AttentionObserver } from '../../src/backend/backend.js';

/**
 * `inner` with every member as it is (whatever the backend reads from an observer), except that `onBlock` also
 * sees each probability block, after `inner` has.
 */
export function watchBlocks(inner: AttentionObserver, onBlock: (block: AttentionBlock) => void): AttentionObserver {
  return new Proxy(inner, {
    get(target, key) {
      if (key === 'observe') {
        return (block: AttentionBlock) => {
          target.observe?.(block);
          onBlock(block);
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
