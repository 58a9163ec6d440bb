/**
 * The service as bench:soak runs it: `tsx bench/support/soak-service.ts --role all` is src/main.ts
 * with one more series on the process's /metrics, `fastadapt_bench_tfjs_tensors_created`: tensors
 * (and variables) tfjs has created in this process since it started (its engine numbers each one
 * from a process-wide counter).
 *
 * Why: live tensors are read when the soak's traffic is paused, so a path that frees what it makes
 * (an adaptation or a conv prediction in one tf.tidy) shows 0 whether it ran on tfjs or not. The
 * created count between two samples proves that the sampled process ran paths that allocate
 * tensors; the live count at rest then proves they freed them.
 */
import { Gauge } from 'prom-client';
import { tf } from '../../src/meta/backend.js';
import { processRegistry } from '../../src/metrics/registry.js';

/** tfjs-core's Engine hands each new tensor `Engine.nextTensorId++` (engine.js): the count so far. */
const created = () => (tf.engine().constructor as unknown as { nextTensorId: number }).nextTensorId;
if (typeof created() !== 'number') throw new Error('this tfjs version has no Engine.nextTensorId: bench/support/soak-service.ts needs another way to count created tensors');

new Gauge({
  name: 'fastadapt_bench_tfjs_tensors_created',
  help: 'TensorFlow.js tensors created in this process since start (bench:soak only; Engine.nextTensorId)',
  registers: [processRegistry],
  collect() {
    this.set(created());
  },
});

await import('../../src/main.js');
