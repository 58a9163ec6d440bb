/**
 * Fused MLP kernels (AssemblyScript -> WebAssembly SIMD): forward pass, backprop and the
 * Hessian-vector product of one task's loss, over raw float32 buffers in this module's memory.
 *
 * Why a hand-written path: at meta-learning sizes (a 1-40-40-1 MLP on 10 examples) the arithmetic
 * of a meta-iteration is a few MFLOP, so a tensor library spends its time dispatching hundreds of
 * tiny kernels. Here one call runs a whole pass over a task, with every buffer allocated once.
 *
 * Layout. The network is L dense layers: hidden layers 0..L-2 (activation relu or softplus, the
 * body) and the head L-1 (linear). A parameter vector holds, layer by layer, the weight
 * [in, out] row-major then the bias [out] (exactly the engine's parameter order, flattened).
 * Activations are row-major [n, width]. Every inner product runs along the contiguous output
 * dimension, four lanes at a time (f32x4), with a scalar tail.
 *
 * Second order (MAML, ANIL, Meta-SGD) uses Pearlmutter's R-operator: forward-over-reverse
 * differentiation of the backprop pass along a direction V, which yields H V exactly, with
 * relu'' = 0 and softplus'' = sigmoid' = s (1 - s), and R{softmax(o)} = p * (R o - <p, R o>).
 *
 * Memory: the stub runtime's bump allocator; nothing is ever freed. The JS side instantiates one
 * module per model shape and capacity and keeps it, so allocation happens at set-up only.
 */

import { axpy, dot, f, matmul, matmulTransposed, outerAccumulate } from './linalg';

export { copy, multiply, step, stepPerParameter, subtractProduct, zero } from './linalg';

const RELU: i32 = 0;
const MSE: i32 = 0;

let layers: i32 = 0;
let activation: i32 = RELU;
let kind: i32 = MSE;
let capacity: i32 = 0;
let dims: StaticArray<i32> = new StaticArray<i32>(0);
/** Offsets (in floats) of each layer's weight and bias in a parameter vector. */
let weightAt: StaticArray<i32> = new StaticArray<i32>(0);
let biasAt: StaticArray<i32> = new StaticArray<i32>(0);
/** H[l]: the input of layer l (H[0] the examples, H[L] the output); S[l]: act'(z) of hidden layer l. */
let H: StaticArray<usize> = new StaticArray<usize>(0);
let S: StaticArray<usize> = new StaticArray<usize>(0);
/** R{H[l]} and R{z_l} along the direction of a Hessian-vector product. */
let RH: StaticArray<usize> = new StaticArray<usize>(0);
let RZ: StaticArray<usize> = new StaticArray<usize>(0);
/** Back-propagated gradients (w.r.t. a pre-activation, and w.r.t. a layer's input) and their R{}. */
let D: usize = 0;
let RD: usize = 0;
let B: usize = 0;
let RB: usize = 0;
/** Softmax of the last cross-entropy forward pass. */
let P: usize = 0;
/** A layer's weight (or direction) transposed, [out, in]: backprop's d @ w^T as a row-wise product. */
let WT: usize = 0;
let VT: usize = 0;
/** ProtoNets scratch: support embeddings, their gradients, prototypes, class counts. */
let E: usize = 0;
let DE: usize = 0;
let MU: usize = 0;
let COUNT: usize = 0;
let correct: i32 = 0;

function floats(n: i32): usize {
  const count: i32 = n > 0 ? n : 1;
  const bytes = <usize>count << 2;
  const p = heap.alloc(bytes);
  memory.fill(p, 0, bytes);
  return p;
}

/** Scratch for `count` bytes, for the JS side's own buffers (16-byte aligned, zeroed). */
export function alloc(bytes: i32): usize {
  return floats((bytes + 3) >> 2);
}

/**
 * Sets the model: `count` = L + 1 widths at `widths` (input, hidden..., output), the activation
 * (0 relu, 1 softplus), the loss (0 MSE, 1 cross-entropy) and the most rows one pass will see.
 * Returns the parameter count.
 */
export function configure(widths: usize, count: i32, act: i32, loss: i32, rows: i32): i32 {
  layers = count - 1;
  activation = act;
  kind = loss;
  capacity = rows;
  dims = new StaticArray<i32>(count);
  weightAt = new StaticArray<i32>(layers);
  biasAt = new StaticArray<i32>(layers);
  let total = 0;
  let widest = 0;
  for (let i = 0; i < count; i++) {
    const w = load<i32>(widths + (<usize>i << 2));
    unchecked((dims[i] = w));
    if (w > widest) widest = w;
  }
  for (let l = 0; l < layers; l++) {
    unchecked((weightAt[l] = total));
    total += unchecked(dims[l]) * unchecked(dims[l + 1]);
    unchecked((biasAt[l] = total));
    total += unchecked(dims[l + 1]);
  }
  H = new StaticArray<usize>(count);
  RH = new StaticArray<usize>(count);
  S = new StaticArray<usize>(layers);
  RZ = new StaticArray<usize>(layers);
  for (let l = 0; l < count; l++) {
    unchecked((H[l] = floats(rows * unchecked(dims[l]))));
    unchecked((RH[l] = floats(rows * unchecked(dims[l]))));
  }
  for (let l = 0; l < layers; l++) {
    unchecked((S[l] = floats(rows * unchecked(dims[l + 1]))));
    unchecked((RZ[l] = floats(rows * unchecked(dims[l + 1]))));
  }
  D = floats(rows * widest);
  RD = floats(rows * widest);
  B = floats(rows * widest);
  RB = floats(rows * widest);
  P = floats(rows * unchecked(dims[layers]));
  let largest = 0;
  for (let l = 0; l < layers; l++) largest = max(largest, unchecked(dims[l]) * unchecked(dims[l + 1]));
  WT = floats(largest);
  VT = floats(largest);
  const embedding = unchecked(dims[layers - 1]);
  const classes = unchecked(dims[layers]);
  E = floats(rows * embedding);
  DE = floats(rows * embedding);
  MU = floats(classes * embedding);
  COUNT = floats(classes);
  return total;
}

// ---- the network -------------------------------------------------------------------------------

/** act(z) in place, keeping act'(z) in `slope`. */
function activate(z: usize, slope: usize, len: i32): void {
  if (activation == RELU) {
    const zeros = f32x4.splat(0);
    const ones = f32x4.splat(1);
    let i = 0;
    for (; i + 4 <= len; i += 4) {
      const o = <usize>i << 2;
      const v = v128.load(z + o);
      v128.store(z + o, f32x4.max(v, zeros));
      v128.store(slope + o, v128.and(f32x4.gt(v, zeros), ones));
    }
    for (; i < len; i++) {
      const v = load<f32>(f(z, i));
      const on = v > 0;
      store<f32>(f(z, i), on ? v : 0);
      store<f32>(f(slope, i), on ? 1 : 0);
    }
    return;
  }
  for (let i = 0; i < len; i++) {
    const v = load<f32>(f(z, i));
    // softplus(v) = max(v, 0) + log1p(exp(-|v|)), stable for any v; its slope is sigmoid(v).
    const e = Mathf.exp(-Mathf.abs(v));
    store<f32>(f(z, i), Mathf.max(v, 0) + Mathf.log1p(e));
    store<f32>(f(slope, i), v >= 0 ? 1 / (1 + e) : e / (1 + e));
  }
}

/** Forward pass of layers l0..L-1 from H[l0] (already filled) with parameters `p`. */
function forwardFrom(p: usize, n: i32, l0: i32): void {
  for (let l = l0; l < layers; l++) {
    const k = unchecked(dims[l]);
    const m = unchecked(dims[l + 1]);
    const out = unchecked(H[l + 1]);
    matmul(unchecked(H[l]), n, k, f(p, unchecked(weightAt[l])), m, out, f(p, unchecked(biasAt[l])), false);
    if (l < layers - 1) activate(out, unchecked(S[l]), n * m);
  }
}

/**
 * The task's mean loss on the output H[L] against targets `y` (values, or one-hot rows), and its
 * gradient w.r.t. the output into D: MSE mean over n * outDim, cross-entropy mean over n.
 */
function lossAndDelta(y: usize, n: i32): f32 {
  const c = unchecked(dims[layers]);
  const out = unchecked(H[layers]);
  let loss: f64 = 0;
  if (kind == MSE) {
    const scale: f32 = 2 / <f32>(n * c);
    for (let i = 0; i < n * c; i++) {
      const e = load<f32>(f(out, i)) - load<f32>(f(y, i));
      loss += <f64>(e * e);
      store<f32>(f(D, i), scale * e);
    }
    return <f32>(loss / <f64>(n * c));
  }
  correct = 0;
  const inv: f32 = 1 / <f32>n;
  for (let r = 0; r < n; r++) {
    const o = f(out, r * c);
    const t = f(y, r * c);
    let best = 0;
    let most = load<f32>(o);
    for (let j = 1; j < c; j++) {
      const v = load<f32>(f(o, j));
      if (v > most) {
        most = v;
        best = j;
      }
    }
    let sum: f32 = 0;
    for (let j = 0; j < c; j++) sum += Mathf.exp(load<f32>(f(o, j)) - most);
    const lse = most + Mathf.log(sum);
    let label = 0;
    let picked: f32 = 0;
    for (let j = 0; j < c; j++) {
      const tj = load<f32>(f(t, j));
      if (tj > load<f32>(f(t, label))) label = j;
      picked += tj * load<f32>(f(o, j));
      const pj = Mathf.exp(load<f32>(f(o, j)) - lse);
      store<f32>(f(P, r * c + j), pj);
      store<f32>(f(D, r * c + j), (pj - tj) * inv);
    }
    if (label == best) correct++;
    loss += <f64>(lse - picked);
  }
  return <f32>(loss / <f64>n);
}

/**
 * Backprop from D (the gradient w.r.t. layer `top`'s pre-activation) down to layer l0, adding each
 * layer's weight and bias gradient into `g` (a parameter vector).
 */
function backwardFrom(p: usize, n: i32, top: i32, l0: i32, g: usize): void {
  let d = D;
  let b = B;
  for (let l = top; l >= l0; l--) {
    const k = unchecked(dims[l]);
    const m = unchecked(dims[l + 1]);
    outerAccumulate(unchecked(H[l]), n, k, d, m, f(g, unchecked(weightAt[l])), f(g, unchecked(biasAt[l])));
    if (l == l0) break;
    matmulTransposed(d, n, m, f(p, unchecked(weightAt[l])), k, b, false, WT);
    const slope = unchecked(S[l - 1]);
    for (let i = 0; i < n * k; i++) store<f32>(f(b, i), load<f32>(f(b, i)) * load<f32>(f(slope, i)));
    const t = d;
    d = b;
    b = t;
  }
  D = d;
  B = b;
}

/**
 * Loss of parameters `p` on `n` examples (inputs x of width dims[l0], targets y), and its
 * gradient added into `g` for layers l0..L-1. With l0 = L-1, x holds embeddings and only the head
 * runs (ANIL's inner loop). Returns the mean loss.
 */
export function lossGradient(p: usize, x: usize, y: usize, n: i32, l0: i32, g: usize): f32 {
  memory.copy(unchecked(H[l0]), x, <usize>(n * unchecked(dims[l0])) << 2);
  forwardFrom(p, n, l0);
  const loss = lossAndDelta(y, n);
  backwardFrom(p, n, layers - 1, l0, g);
  return loss;
}

/** The mean loss only (and, for cross-entropy, the count of correct arg-maxes: `lastCorrect`). */
export function lossOnly(p: usize, x: usize, y: usize, n: i32, l0: i32): f32 {
  memory.copy(unchecked(H[l0]), x, <usize>(n * unchecked(dims[l0])) << 2);
  forwardFrom(p, n, l0);
  return lossAndDelta(y, n);
}

/** Correct arg-max predictions of the last cross-entropy pass. */
export function lastCorrect(): i32 {
  return correct;
}

/** The body's output (the embedding, width dims[L-1]) of `n` inputs, written to `out`. */
export function embed(p: usize, x: usize, n: i32, out: usize): void {
  memory.copy(unchecked(H[0]), x, <usize>(n * unchecked(dims[0])) << 2);
  for (let l = 0; l < layers - 1; l++) {
    const k = unchecked(dims[l]);
    const m = unchecked(dims[l + 1]);
    matmul(unchecked(H[l]), n, k, f(p, unchecked(weightAt[l])), m, unchecked(H[l + 1]), f(p, unchecked(biasAt[l])), false);
    activate(unchecked(H[l + 1]), unchecked(S[l]), n * m);
  }
  memory.copy(out, unchecked(H[layers - 1]), <usize>(n * unchecked(dims[layers - 1])) << 2);
}

/**
 * Gradient (added into `g`) and Hessian-vector product H v (added into `hv`) of the mean loss of
 * parameters `p` on `n` examples, along direction `v` (a parameter vector) that is zero on the
 * layers below `directed` (0: a direction on every layer; L-1: on the head only, ANIL). Returns the loss.
 */
export function hessianVector(p: usize, v: usize, x: usize, y: usize, n: i32, g: usize, hv: usize, directed: i32): f32 {
  memory.copy(unchecked(H[0]), x, <usize>(n * unchecked(dims[0])) << 2);
  // Forward, and R{} of it: R{z_l} = R{H_l} W_l + H_l V_l + Vb_l; R{H_l+1} = act'(z_l) R{z_l}.
  for (let l = 0; l < layers; l++) {
    const k = unchecked(dims[l]);
    const m = unchecked(dims[l + 1]);
    const w = f(p, unchecked(weightAt[l]));
    const out = unchecked(H[l + 1]);
    const rz = unchecked(RZ[l]);
    matmul(unchecked(H[l]), n, k, w, m, out, f(p, unchecked(biasAt[l])), false);
    // Below `directed` the direction is zero, and so are R{z} and R{H} (ANIL: the body).
    if (l >= directed) matmul(unchecked(H[l]), n, k, f(v, unchecked(weightAt[l])), m, rz, f(v, unchecked(biasAt[l])), false);
    else memory.fill(rz, 0, <usize>(n * m) << 2);
    if (l > directed) matmul(unchecked(RH[l]), n, k, w, m, rz, 0, true);
    if (l < layers - 1) {
      const slope = unchecked(S[l]);
      activate(out, slope, n * m);
      const rh = unchecked(RH[l + 1]);
      for (let i = 0; i < n * m; i++) store<f32>(f(rh, i), load<f32>(f(slope, i)) * load<f32>(f(rz, i)));
    } else {
      memory.copy(unchecked(RH[layers]), rz, <usize>(n * m) << 2);
    }
  }
  const loss = lossAndDelta(y, n);
  // R{dL/do}: MSE 2 R{o} / (n c); cross-entropy p * (R{o} - <p, R{o}>) / n.
  const c = unchecked(dims[layers]);
  const ro = unchecked(RH[layers]);
  if (kind == MSE) {
    const scale: f32 = 2 / <f32>(n * c);
    for (let i = 0; i < n * c; i++) store<f32>(f(RD, i), scale * load<f32>(f(ro, i)));
  } else {
    const inv: f32 = 1 / <f32>n;
    for (let r = 0; r < n; r++) {
      const pr = f(P, r * c);
      const rr = f(ro, r * c);
      const mean = dot(pr, rr, c);
      for (let j = 0; j < c; j++) store<f32>(f(RD, r * c + j), load<f32>(f(pr, j)) * (load<f32>(f(rr, j)) - mean) * inv);
    }
  }
  // Backward, and R{} of it.
  let d = D;
  let rd = RD;
  let b = B;
  let rb = RB;
  for (let l = layers - 1; l >= 0; l--) {
    const k = unchecked(dims[l]);
    const m = unchecked(dims[l + 1]);
    const wAt = unchecked(weightAt[l]);
    const bAt = unchecked(biasAt[l]);
    const h = unchecked(H[l]);
    outerAccumulate(h, n, k, d, m, f(g, wAt), f(g, bAt));
    outerAccumulate(h, n, k, rd, m, f(hv, wAt), f(hv, bAt));
    if (l == 0) break;
    if (l > directed) outerAccumulate(unchecked(RH[l]), n, k, d, m, f(hv, wAt), 0);
    // b = d W^T; R{b} = R{d} W^T + d V^T (W^T made once for both products).
    matmulTransposed(d, n, m, f(p, wAt), k, b, false, WT);
    matmul(rd, n, m, WT, k, rb, 0, false);
    if (l >= directed) matmulTransposed(d, n, m, f(v, wAt), k, rb, true, VT);
    // delta_{l-1} = b * s; R{delta} = R{b} * s + b * act''(z) R{z}, act'' = s (1 - s) for softplus.
    const slope = unchecked(S[l - 1]);
    const rz = unchecked(RZ[l - 1]);
    for (let i = 0; i < n * k; i++) {
      const s = load<f32>(f(slope, i));
      const bi = load<f32>(f(b, i));
      let r = load<f32>(f(rb, i)) * s;
      if (activation != RELU && l > directed) r += bi * s * (1 - s) * load<f32>(f(rz, i));
      store<f32>(f(rb, i), r);
      store<f32>(f(b, i), bi * s);
    }
    let t = d;
    d = b;
    b = t;
    t = rd;
    rd = rb;
    rb = t;
  }
  D = d;
  B = b;
  RD = rd;
  RB = rb;
  return loss;
}

/**
 * ProtoNets' head from the support set: prototypes mu_c (mean embedding of class c's examples),
 * w_c = 2 mu_c, b_c = -|mu_c|^2, written into the head slots of parameter vector `p` (whose body
 * is used). Leaves the support embeddings in E and the prototypes in MU.
 */
export function prototypeHead(p: usize, x: usize, y: usize, n: i32): void {
  const c = unchecked(dims[layers]);
  const e = unchecked(dims[layers - 1]);
  embed(p, x, n, E);
  memory.fill(MU, 0, <usize>(c * e) << 2);
  memory.fill(COUNT, 0, <usize>c << 2);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < c; j++) {
      const t = load<f32>(f(y, r * c + j));
      if (t != 0) {
        axpy(f(MU, j * e), t, f(E, r * e), e);
        store<f32>(f(COUNT, j), load<f32>(f(COUNT, j)) + t);
      }
    }
  }
  const w = f(p, unchecked(weightAt[layers - 1]));
  const bias = f(p, unchecked(biasAt[layers - 1]));
  for (let j = 0; j < c; j++) {
    // Every class has at least one shot in an episode; max(count, 1) as the tfjs path does.
    const inv: f32 = 1 / Mathf.max(load<f32>(f(COUNT, j)), 1);
    const mu = f(MU, j * e);
    for (let i = 0; i < e; i++) store<f32>(f(mu, i), load<f32>(f(mu, i)) * inv);
    for (let i = 0; i < e; i++) store<f32>(f(w, i * c + j), 2 * load<f32>(f(mu, i)));
    store<f32>(f(bias, j), -dot(mu, mu, e));
  }
}

/**
 * One ProtoNets task: query loss with the prototype head, and its gradient w.r.t. the body added
 * into `g`, through the query embeddings and (first order, exactly) through the prototypes.
 * `p` is a full parameter vector whose head slots are overwritten. Returns the query loss.
 */
export function prototypeTask(p: usize, xs: usize, ys: usize, ns: i32, xq: usize, yq: usize, nq: i32, g: usize, gHead: usize): f32 {
  const c = unchecked(dims[layers]);
  const e = unchecked(dims[layers - 1]);
  prototypeHead(p, xs, ys, ns);
  const wAt = unchecked(weightAt[layers - 1]);
  const bAt = unchecked(biasAt[layers - 1]);
  // Query pass through body and head into the scratch vector gHead: its body part is the query
  // embeddings' share of the body gradient, its head part dL/dw and dL/db.
  memory.fill(gHead, 0, <usize>(bAt + c) << 2);
  const loss = lossGradient(p, xq, yq, nq, 0, gHead);
  axpy(g, 1, gHead, wAt);
  // dL/dmu_c = 2 dL/dw_c - 2 mu_c dL/db_c; each support embedding gets its class's share.
  const gw = f(gHead, wAt);
  const gb = f(gHead, bAt);
  memory.fill(DE, 0, <usize>(ns * e) << 2);
  for (let j = 0; j < c; j++) {
    const inv: f32 = 1 / Mathf.max(load<f32>(f(COUNT, j)), 1);
    const dbj = load<f32>(f(gb, j));
    const mu = f(MU, j * e);
    for (let r = 0; r < ns; r++) {
      const t = load<f32>(f(ys, r * c + j)) * inv;
      if (t == 0) continue;
      const de = f(DE, r * e);
      for (let i = 0; i < e; i++) store<f32>(f(de, i), load<f32>(f(de, i)) + t * (2 * load<f32>(f(gw, i * c + j)) - 2 * load<f32>(f(mu, i)) * dbj));
    }
  }
  // Support pass through the body again (the query pass overwrote the cache), then backprop DE.
  embed(p, xs, ns, E);
  const top = layers - 2;
  const slope = unchecked(S[top]);
  for (let i = 0; i < ns * e; i++) store<f32>(f(D, i), load<f32>(f(DE, i)) * load<f32>(f(slope, i)));
  backwardFrom(p, ns, top, 0, g);
  return loss;
}
