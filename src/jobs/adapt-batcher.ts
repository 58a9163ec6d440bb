/**
 * Micro-batching of adaptations: the adapt queue runs several jobs at once, and those that reach the
 * engine in the same turn of the event loop with the same meta-model, support-set size, steps and
 * innerLr run as ONE batched inner loop (adaptMany). A small model's adaptation is mostly kernel
 * dispatch, so a batch of four costs little more than one. A lone job waits only until
 * setImmediate, i.e. for the I/O callbacks already due, never for a timer.
 */
import { adaptMany, type AdaptOptions, type AdaptResult, type Examples, type MetaModel, type NonFiniteError } from '../meta/index.js';

interface Pending {
  support: Examples;
  resolve: (result: AdaptResult | NonFiniteError) => void;
  reject: (error: unknown) => void;
}

interface Batch {
  model: MetaModel;
  options: Required<AdaptOptions>;
  pending: Pending[];
}

export class AdaptBatcher {
  private readonly open = new Map<string, Batch>();
  private readonly ids = new WeakMap<MetaModel, number>();
  private nextId = 0;

  /**
   * Adapts `support` in the next batch of its kind.
   * @returns the task's result, or a NonFiniteError when its adaptation diverged.
   * @rejects RangeError when the support set or settings do not fit the model.
   */
  adapt(model: MetaModel, support: Examples, options: Required<AdaptOptions>): Promise<AdaptResult | NonFiniteError> {
    let id = this.ids.get(model);
    if (id === undefined) this.ids.set(model, (id = this.nextId++));
    const key = `${id}/${support.n}/${options.steps}/${options.lr}/${options.guard}`;
    let batch = this.open.get(key);
    if (!batch) {
      const created: Batch = { model, options, pending: [] };
      this.open.set(key, created);
      setImmediate(() => {
        this.open.delete(key);
        run(created);
      });
      batch = created;
    }
    return new Promise((resolve, reject) => batch.pending.push({ support, resolve, reject }));
  }
}

function run({ model, options, pending }: Batch): void {
  try {
    const results = adaptMany(model, pending.map((p) => p.support), options);
    pending.forEach((p, i) => p.resolve(results[i]));
  } catch (error) {
    if (pending.length === 1) return pending[0].reject(error);
    // One unfit support set refuses the whole batch: adapt each alone, so only that one fails.
    for (const p of pending) run({ model, options, pending: [p] });
  }
}
