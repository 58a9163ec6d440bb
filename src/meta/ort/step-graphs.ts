/**
 * A whole meta-step as one ONNX graph, for the algorithms whose head on the embeddings is a few
 * small products: the training forward pass (graph.ts), the head's loss on the embeddings and its
 * gradient w.r.t. them and the head's meta-parameters, written out here, and the backward pass.
 * What the backward pass reads of the forward one never leaves onnxruntime (with a forward and a
 * backward graph, about 9 MB per step at 80 Conv-4 images is copied out to JS, and its collection
 * costs CPU time on V8's helper threads), and no tfjs head runs.
 *
 * A meta-batch's images are every task's support rows, then every task's query rows (imagesOf);
 * the embeddings split into S [T, ns, D] and Q [T, nq, D]. Targets come in the loss's layout: one-hot
 * [T, n, C] for classification, values [T, n, 1] for regression. The loss is the mean over tasks of
 * each task's mean query loss (cross-entropy over n, MSE over n outputs), as the tfjs engine's.
 */

import type { TaskKind } from '../types.js';
import { FLOAT, floatScalar, int64Vector, node, onnxModel, valueInfo, type Field } from '../../util/onnx-graph.js';
import { backwardNodes, blockDims, embeddingWidth, flippedInfo, forwardNodes, gradInfo, gradName, inputs, OPSET, type ConvGraphShape } from './graph.js';

/** A meta-batch of episodes: `tasks` of them, `outputs` logits (ways) or 1 value per example. */
export interface EpisodeShapes {
  tasks: number;
  supportSize: number;
  querySize: number;
  outputs: number;
}

/** The head's part of a step graph: from `episode.support` and `episode.query` to `loss` and their gradients `episode.support_grad` and `episode.query_grad`. */
interface HeadPart {
  nodes: Field[];
  initializers: Field[];
  inputs: Field[];
  /** Beyond `loss` and the body's gradients. */
  outputs: Field[];
}

const transposed = (input: string, output: string) => node('Transpose', [input], [output], { perm: [0, 2, 1] });

/**
 * Axes of [T, n, C] tensors: every step graph has `episode.tasks.axis` and `episode.shots.axis`; a
 * head part adds the others it uses (onnxruntime warns of an unused initializer).
 */
const axis = (name: 'tasks' | 'shots' | 'outputs' | 'tasks_and_shots', values: number[]) => int64Vector(`episode.${name}.${values.length > 1 ? 'axes' : 'axis'}`, values);
const OUTPUTS_AXIS = axis('outputs', [2]);

function stepGraph(name: string, shape: ConvGraphShape, episodes: EpisodeShapes, head: HeadPart): Uint8Array {
  const { tasks, supportSize, querySize } = episodes;
  const supportRows = tasks * supportSize;
  if (shape.batch !== supportRows + tasks * querySize) throw new RangeError(`a meta-step's batch is its ${supportRows + tasks * querySize} images, not ${shape.batch}`);
  const dims = blockDims(shape);
  const width = embeddingWidth(dims);
  const forward = forwardNodes(shape, dims, true);
  const backward = backwardNodes(shape, dims, false);
  const e = (part: string) => `episode.${part}`;
  const initializers = [
    axis('tasks', [0]),
    axis('shots', [1]),
    int64Vector(e('support.ends'), [supportRows]),
    int64Vector(e('query.ends'), [shape.batch]),
    int64Vector(e('zero.start'), [0]),
    int64Vector(e('support.shape'), [tasks, supportSize, width]),
    int64Vector(e('query.shape'), [tasks, querySize, width]),
    int64Vector(e('support.rows.shape'), [supportRows, width]),
    int64Vector(e('query.rows.shape'), [tasks * querySize, width]),
  ];
  const split = [
    node('Slice', ['embedding', e('zero.start'), e('support.ends'), e('tasks.axis')], [e('support.rows')]),
    node('Slice', ['embedding', e('support.ends'), e('query.ends'), e('tasks.axis')], [e('query.rows')]),
    node('Reshape', [e('support.rows'), e('support.shape')], [e('support')]),
    node('Reshape', [e('query.rows'), e('query.shape')], [e('query')]),
  ];
  const join = [
    node('Reshape', [e('support_grad'), e('support.rows.shape')], [e('support_grad.rows')]),
    node('Reshape', [e('query_grad'), e('query.rows.shape')], [e('query_grad.rows')]),
    node('Concat', [e('support_grad.rows'), e('query_grad.rows')], ['embedding_grad'], { axis: 0 }),
  ];
  return onnxModel(
    {
      name,
      nodes: [...forward.nodes, ...split, ...head.nodes, ...join, ...backward.nodes],
      initializers: [...forward.initializers, ...initializers, ...head.initializers, ...backward.initializers],
      inputs: [...inputs(shape, dims), ...flippedInfo(dims), ...head.inputs],
      outputs: [valueInfo(12, 'loss', FLOAT, []), ...head.outputs, ...gradInfo(dims)],
    },
    OPSET,
  );
}

/** The targets' inputs, `support.targets` [T, ns, C] and `query.targets` [T, nq, C]. */
function targetInputs({ tasks, supportSize, querySize, outputs }: EpisodeShapes): Field[] {
  return [valueInfo(11, 'support.targets', FLOAT, [tasks, supportSize, outputs]), valueInfo(11, 'query.targets', FLOAT, [tasks, querySize, outputs])];
}

/**
 * The query loss of logits (values) `z` [T, nq, C] into `loss`, and its gradient w.r.t. them into
 * `<prefix>query.z_grad`: cross-entropy dz = (softmax(z) - Yq) / (T nq); MSE dz = 2 (z - yq) / (T nq).
 */
function queryLossNodes(kind: TaskKind, p: (part: string) => string, z: string, { tasks, querySize }: EpisodeShapes, initializers: Field[]): Field[] {
  const perQuery = 1 / (tasks * querySize);
  if (kind === 'regression') {
    initializers.push(floatScalar(p('query.per_value'), perQuery), floatScalar(p('query.grad_per_value'), 2 * perQuery));
    return [
      node('Sub', [z, 'query.targets'], [p('query.residual')]),
      node('Mul', [p('query.residual'), p('query.residual')], [p('query.squares')]),
      node('ReduceSum', [p('query.squares')], [p('query.squares.sum')], { keepdims: 0 }),
      node('Mul', [p('query.squares.sum'), p('query.per_value')], ['loss']),
      node('Mul', [p('query.residual'), p('query.grad_per_value')], [p('query.z_grad')]),
    ];
  }
  initializers.push(floatScalar(p('query.per_query'), perQuery), floatScalar(p('query.minus_per_query'), -perQuery));
  return [
    node('ReduceLogSumExp', [z], [p('query.lse')], { axes: [2], keepdims: 1 }),
    node('Sub', [z, p('query.lse')], [p('query.log_probs')]),
    node('Mul', ['query.targets', p('query.log_probs')], [p('query.picked')]),
    node('ReduceSum', [p('query.picked')], [p('query.picked.sum')], { keepdims: 0 }),
    node('Mul', [p('query.picked.sum'), p('query.minus_per_query')], ['loss']),
    node('Exp', [p('query.log_probs')], [p('query.probs')]),
    node('Sub', [p('query.probs'), 'query.targets'], [p('query.residual')]),
    node('Mul', [p('query.residual'), p('query.per_query')], [p('query.z_grad')]),
  ];
}

/**
 * ProtoNets (protonet.ts): prototypes P = (Y^T S) / counts, logits L = 2 Q P^T - |P|^2 (its linear
 * head; the |q|^2 term is the same for every class), the query cross-entropy. With G its gradient
 * w.r.t. L: dQ = 2 G P; dP = 2 (G^T Q - colsum(G) P); dS = Y (dP / counts).
 */
export function protonetStepGraph(shape: ConvGraphShape, episodes: EpisodeShapes): Uint8Array {
  const h = (part: string) => `proto.${part}`;
  const initializers = [floatScalar(h('two'), 2), OUTPUTS_AXIS];
  const nodes = [
    // Prototypes: every class has a shot in an episode; the floor of 1 is protonet.ts'.
    node('ReduceSum', ['support.targets', 'episode.shots.axis'], [h('counts.raw')], { keepdims: 1 }),
    node('Max', [h('counts.raw'), 'one'], [h('counts')]),
    transposed(h('counts'), h('counts.column')),
    transposed('support.targets', h('onehot.t')),
    node('MatMul', [h('onehot.t'), 'episode.support'], [h('sums')]),
    node('Div', [h('sums'), h('counts.column')], [h('prototypes')]),
    transposed(h('prototypes'), h('prototypes.t')),
    node('MatMul', ['episode.query', h('prototypes.t')], [h('dots')]),
    node('Mul', [h('prototypes'), h('prototypes')], [h('squares')]),
    node('ReduceSum', [h('squares'), 'episode.outputs.axis'], [h('norms')], { keepdims: 1 }),
    transposed(h('norms'), h('norms.row')),
    node('Mul', [h('dots'), h('two')], [h('dots.2')]),
    node('Sub', [h('dots.2'), h('norms.row')], [h('logits')]),
    ...queryLossNodes('classification', h, h('logits'), episodes, initializers),
    // The gradient w.r.t. the embeddings.
    node('MatMul', [h('query.z_grad'), h('prototypes')], [h('query_grad.half')]),
    node('Mul', [h('query_grad.half'), h('two')], ['episode.query_grad']),
    transposed(h('query.z_grad'), h('logits_grad.t')),
    node('MatMul', [h('logits_grad.t'), 'episode.query'], [h('prototypes_grad.dots')]),
    node('ReduceSum', [h('query.z_grad'), 'episode.shots.axis'], [h('class_weight.row')], { keepdims: 1 }),
    transposed(h('class_weight.row'), h('class_weight')),
    node('Mul', [h('class_weight'), h('prototypes')], [h('prototypes_grad.norms')]),
    node('Sub', [h('prototypes_grad.dots'), h('prototypes_grad.norms')], [h('prototypes_grad.half')]),
    node('Mul', [h('prototypes_grad.half'), h('two')], [h('prototypes_grad')]),
    node('Div', [h('prototypes_grad'), h('counts.column')], [h('prototypes_grad.per_shot')]),
    node('MatMul', ['support.targets', h('prototypes_grad.per_shot')], ['episode.support_grad']),
  ];
  return stepGraph('protonet-step', shape, episodes, { nodes, initializers, inputs: targetInputs(episodes), outputs: [] });
}

/**
 * ANIL (anil.ts): `steps` gradient steps of the head (W [D, C], b [C], shared, so each task's own
 * from its first step) on its support loss with step size `inner.lr` (an input), then the query loss
 * at the adapted head; second order through the steps, as the tfjs engine differentiates them.
 *
 * Forward, per step j: Z_j = S W_j + b_j; G_j = dL_s/dZ_j (cross-entropy: (softmax(Z_j) - Y) / ns;
 * MSE: 2 (Z_j - y) / ns); W_{j+1} = W_j - lr S^T G_j; b_{j+1} = b_j - lr colsum(G_j).
 * Backward, from the query's dW_k = Q^T dZ_q, db_k = colsum(dZ_q), dQ = dZ_q W_k^T, per step back:
 *   dG = -lr (S dW_{j+1} + db_{j+1});  dZ = J_j^T dG (softmax: P (dG/ns - rowsum(P dG/ns)) with
 *   P = softmax(Z_j); MSE: 2 dG / ns);  dW_j = dW_{j+1} + S^T dZ;  db_j = db_{j+1} + colsum(dZ);
 *   dS += dZ W_j^T - lr G_j dW_{j+1}^T.
 * The meta-gradient of W and b sums dW_0 and db_0 over the tasks.
 */
export function anilStepGraph(shape: ConvGraphShape, episodes: EpisodeShapes, kind: TaskKind, steps: number): Uint8Array {
  const { tasks, supportSize, outputs } = episodes;
  const width = embeddingWidth(blockDims(shape));
  const a = (part: string) => `anil.${part}`;
  const initializers = [
    int64Vector(a('weight.shape'), [tasks, width, outputs]),
    int64Vector(a('bias.shape'), [tasks, 1, outputs]),
    int64Vector(a('bias.grad.shape'), [outputs]),
    axis('tasks_and_shots', [0, 1]),
    ...(kind === 'classification' ? [OUTPUTS_AXIS] : []),
    floatScalar(a('per_shot'), (kind === 'regression' ? 2 : 1) / supportSize),
    // With no inner step the support set takes no gradient (an unused initializer would draw a warning).
    ...(steps === 0 ? [floatScalar(a('zero'), 0)] : []),
  ];
  const W = (j: number) => a(`w${j}`);
  const B = (j: number) => a(`b${j}`);
  const nodes = [
    node('Expand', ['head.weight', a('weight.shape')], [W(0)]),
    node('Expand', ['head.bias', a('bias.shape')], [B(0)]),
    transposed('episode.support', a('support.t')),
    node('Neg', ['inner.lr'], [a('minus_lr')]),
  ];
  // Forward through the inner steps, keeping each step's G (and softmax) for the way back.
  for (let j = 0; j < steps; j++) {
    const s = (part: string) => a(`step${j}.${part}`);
    nodes.push(node('MatMul', ['episode.support', W(j)], [s('dots')]), node('Add', [s('dots'), B(j)], [s('z')]));
    if (kind === 'regression') {
      nodes.push(node('Sub', [s('z'), 'support.targets'], [s('residual')]));
    } else {
      nodes.push(node('Softmax', [s('z')], [s('probs')], { axis: 2 }), node('Sub', [s('probs'), 'support.targets'], [s('residual')]));
    }
    nodes.push(
      node('Mul', [s('residual'), a('per_shot')], [s('g')]),
      node('MatMul', [a('support.t'), s('g')], [s('weight_step')]),
      node('ReduceSum', [s('g'), 'episode.shots.axis'], [s('bias_step')], { keepdims: 1 }),
      node('Mul', [s('weight_step'), a('minus_lr')], [s('weight_move')]),
      node('Mul', [s('bias_step'), a('minus_lr')], [s('bias_move')]),
      node('Add', [W(j), s('weight_move')], [W(j + 1)]),
      node('Add', [B(j), s('bias_move')], [B(j + 1)]),
    );
  }
  // The query loss at the adapted head.
  nodes.push(node('MatMul', ['episode.query', W(steps)], [a('query.dots')]), node('Add', [a('query.dots'), B(steps)], [a('query.z')]));
  nodes.push(...queryLossNodes(kind, a, a('query.z'), episodes, initializers));
  const dW = (j: number) => a(`w${j}_grad`);
  const dB = (j: number) => a(`b${j}_grad`);
  nodes.push(
    transposed('episode.query', a('query.t')),
    node('MatMul', [a('query.t'), a('query.z_grad')], [dW(steps)]),
    node('ReduceSum', [a('query.z_grad'), 'episode.shots.axis'], [dB(steps)], { keepdims: 1 }),
    transposed(W(steps), a(`w${steps}.t`)),
    node('MatMul', [a('query.z_grad'), a(`w${steps}.t`)], ['episode.query_grad']),
  );
  // Back through the inner steps; the support embeddings' gradient gathers two terms per step.
  const supportGrads: string[] = [];
  for (let j = steps - 1; j >= 0; j--) {
    const s = (part: string) => a(`step${j}.${part}`);
    nodes.push(
      node('MatMul', ['episode.support', dW(j + 1)], [s('g_grad.weight')]),
      node('Add', [s('g_grad.weight'), dB(j + 1)], [s('g_grad.sum')]),
      node('Mul', [s('g_grad.sum'), a('minus_lr')], [s('g_grad')]),
      node('Mul', [s('g_grad'), a('per_shot')], [s('g_grad.scaled')]),
    );
    if (kind === 'regression') {
      nodes.push(node('Identity', [s('g_grad.scaled')], [s('z_grad')]));
    } else {
      nodes.push(
        node('Mul', [s('probs'), s('g_grad.scaled')], [s('weighted')]),
        node('ReduceSum', [s('weighted'), 'episode.outputs.axis'], [s('weighted.sum')], { keepdims: 1 }),
        node('Sub', [s('g_grad.scaled'), s('weighted.sum')], [s('centred')]),
        node('Mul', [s('probs'), s('centred')], [s('z_grad')]),
      );
    }
    nodes.push(
      node('MatMul', [a('support.t'), s('z_grad')], [s('weight_grad.step')]),
      node('Add', [dW(j + 1), s('weight_grad.step')], [dW(j)]),
      node('ReduceSum', [s('z_grad'), 'episode.shots.axis'], [s('bias_grad.step')], { keepdims: 1 }),
      node('Add', [dB(j + 1), s('bias_grad.step')], [dB(j)]),
      transposed(W(j), s('w.t')),
      node('MatMul', [s('z_grad'), s('w.t')], [s('support_grad.through_z')]),
      transposed(dW(j + 1), s('w_next_grad.t')),
      node('MatMul', [s('g'), s('w_next_grad.t')], [s('support_grad.through_step.raw')]),
      node('Mul', [s('support_grad.through_step.raw'), a('minus_lr')], [s('support_grad.through_step')]),
    );
    supportGrads.push(s('support_grad.through_z'), s('support_grad.through_step'));
  }
  nodes.push(supportGrads.length > 0 ? node('Sum', supportGrads, ['episode.support_grad']) : node('Mul', ['episode.support', a('zero')], ['episode.support_grad']));
  nodes.push(
    node('ReduceSum', [dW(0), 'episode.tasks.axis'], [gradName('head.weight')], { keepdims: 0 }),
    node('ReduceSum', [dB(0), 'episode.tasks_and_shots.axes'], [a('bias_grad.flat')], { keepdims: 0 }),
    node('Reshape', [a('bias_grad.flat'), a('bias.grad.shape')], [gradName('head.bias')]),
  );
  return stepGraph(`anil-step-${steps}`, shape, episodes, {
    nodes,
    initializers,
    inputs: [...targetInputs(episodes), valueInfo(11, 'head.weight', FLOAT, [width, outputs]), valueInfo(11, 'head.bias', FLOAT, [outputs]), valueInfo(11, 'inner.lr', FLOAT, [])],
    outputs: [valueInfo(12, gradName('head.weight'), FLOAT, [width, outputs]), valueInfo(12, gradName('head.bias'), FLOAT, [outputs])],
  });
}
