/**
 * Multi-task learning by hard parameter sharing, the source idea's own method ("a shared
 * input-to-representation mapping with task-specific output mappings; knowledge transfers by
 * adjusting the output mapping") and the "pretrain, then fit a linear head" baseline of the few-shot
 * literature. Training is not episodic: one body and one output head per task of a fixed pool of
 * training tasks are trained jointly, each iteration an Adam step on the mean loss of a minibatch of
 * pool tasks and examples. A new task then gets a fresh head fitted in closed form on its support
 * set's body features (ridge regression, or multinomial logistic regression by Newton's method: see
 * linear-head.ts). The meta-model keeps only the body; the pool's heads are training state. The inner
 * settings (steps, lr) are not used.
 */

import { tf } from '../backend.js';
import { ridgeHead, logisticHead } from '../linear-head.js';
import { taskLoss } from '../losses.js';
import { applyHead, bodyShapes, embed, embeddingDim, HEAD_BIAS, HEAD_WEIGHT, initModelParams, splitBodyHead, type ModelSpec, type NamedTensors, type ParamArrays } from '../model.js';
import { plainMatMul } from '../ops.js';
import { encodeTargets } from '../tensors.js';
import { TASK_KINDS, type PoolBatch } from '../types.js';
import { POOL_PREFIX, type PoolAlgorithm } from './types.js';

/** The pool's heads: task t's head is weight[t] [D, c] and bias[t] [c], c = the most outputs of any task. */
export const POOL_WEIGHT = `${POOL_PREFIX}head.weight`;
export const POOL_BIAS = `${POOL_PREFIX}head.bias`;

/** A logit that no class of a task with fewer classes than the widest one can win. */
const ABSENT_CLASS = -1e9;

export const multitask: PoolAlgorithm = {
  name: 'multitask',
  kinds: TASK_KINDS,
  adaptsBody: false,
  metaTrainsHead: false,
  runsInnerSteps: false,
  trainsOn: 'pool',
  initMetaParams: (spec, rng) =>
    initModelParams(
      spec,
      rng,
      bodyShapes(spec).map(([name]) => name),
    ),
  initPoolParams(spec, outputs, rng) {
    // nn.Linear's initialisation for every task's head, as the model's own head (initModelParams).
    const embedding = embeddingDim(spec);
    const width = Math.max(...outputs);
    const bound = 1 / Math.sqrt(embedding);
    const draw = (size: number) => Float32Array.from({ length: size }, () => rng.uniform(-bound, bound));
    const params: ParamArrays = {};
    params[POOL_WEIGHT] = { shape: [outputs.length, embedding, width], data: draw(outputs.length * embedding * width) };
    params[POOL_BIAS] = { shape: [outputs.length, width], data: draw(outputs.length * width) };
    return params;
  },
  poolGradient(spec, params, batch) {
    const x = tf.tensor3d(batch.x, [batch.tasks, batch.n, spec.inputDim]);
    const names = Object.keys(params);
    const objective = (...p: tf.Tensor[]): tf.Scalar => {
      const theta = Object.fromEntries(names.map((name, i) => [name, p[i]]));
      return poolLoss(spec, theta, embed(spec, theta, x) as tf.Tensor3D, batch);
    };
    const { value, grads } = tf.valueAndGrads(objective)(names.map((name) => params[name]));
    return { loss: value, grads: Object.fromEntries(names.map((name, i) => [name, grads[i]])) };
  },
  adapt(spec, theta, support) {
    const { body } = splitBodyHead(theta);
    const [tasks, n] = support.x.shape;
    const features = embed(spec, body, support.x);
    const dim = features.shape[2] as number;
    const h = features.dataSync();
    const targets = support.y.dataSync();
    const classes = spec.outputDim;
    const weight = new Float32Array(tasks * dim * classes);
    const bias = new Float32Array(tasks * classes);
    for (let t = 0; t < tasks; t++) {
      const ht = h.subarray(t * n * dim, (t + 1) * n * dim);
      let head;
      if (spec.kind === 'regression') {
        head = ridgeHead(ht, targets.subarray(t * n, (t + 1) * n), n, dim);
      } else {
        // Targets arrive one-hot [n, C]: back to labels.
        const labels = Array.from({ length: n }, (_, i) => targets.subarray((t * n + i) * classes, (t * n + i + 1) * classes).indexOf(1));
        head = logisticHead(ht, labels, n, dim, classes);
      }
      weight.set(head.weight, t * dim * classes);
      bias.set(head.bias, t * classes);
    }
    const adapted: NamedTensors = { ...body };
    adapted[HEAD_WEIGHT] = tf.tensor3d(weight, [tasks, dim, classes]);
    adapted[HEAD_BIAS] = tf.tensor3d(bias, [tasks, 1, classes]);
    return adapted;
  },
};

/**
 * The mean loss of a pool minibatch from its body features [tasks, n, D] and the pool's heads in
 * `theta`: the part of multitask's objective after the body (the ONNX Runtime engine runs the body
 * and differentiates this w.r.t. the features).
 */
export function poolLoss(spec: ModelSpec, theta: NamedTensors, features: tf.Tensor3D, batch: PoolBatch): tf.Scalar {
  const [size, embedding, width] = theta[POOL_WEIGHT].shape as [number, number, number];
  const { tasks, n } = batch;
  // Each minibatch task picks its head by a one-hot row: plain matMuls, whose gradient sums the
  // rows of tasks drawn twice (tf.gather's gradient has no kernel on the wasm backend).
  const select = new Float32Array(tasks * size);
  batch.taskIds.forEach((id, t) => (select[t * size + id] = 1));
  const pick = tf.tensor2d(select, [tasks, size]);
  const y = tf.tensor3d(encodeTargets(spec, batch.y, width), [tasks, n, width]);
  const weight = tf.reshape(plainMatMul(pick, tf.reshape(theta[POOL_WEIGHT], [size, embedding * width])), [tasks, embedding, width]);
  const bias = tf.reshape(plainMatMul(pick, theta[POOL_BIAS]), [tasks, 1, width]);
  let logits = applyHead({ [HEAD_WEIGHT]: weight, [HEAD_BIAS]: bias }, features);
  // A task with fewer classes than the widest: its extra outputs take no part in its softmax.
  if (spec.kind === 'classification' && batch.outputs.some((c) => c < width)) {
    const absent = Float32Array.from({ length: tasks * width }, (_, i) => (i % width < batch.outputs[Math.floor(i / width)] ? 0 : ABSENT_CLASS));
    logits = tf.add(logits, tf.tensor3d(absent, [tasks, 1, width]));
  }
  return tf.mean(taskLoss(spec.kind, logits, y));
}
