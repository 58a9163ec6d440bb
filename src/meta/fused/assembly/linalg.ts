/**
 * Linear algebra over raw float32 buffers for the fused kernels: f32x4 SIMD over contiguous floats
 * with a scalar tail. Row-major matrices; every inner loop runs along the contiguous dimension.
 */

/** The address of float i of a buffer at byte offset p. */
@inline export function f(p: usize, i: i32): usize {
  return p + (<usize>i << 2);
}

/** dst += a * src over `len` floats. */
@inline export function axpy(dst: usize, a: f32, src: usize, len: i32): void {
  const av = f32x4.splat(a);
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize>i << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), f32x4.mul(av, v128.load(src + o))));
  }
  for (; i < len; i++) store<f32>(f(dst, i), load<f32>(f(dst, i)) + a * load<f32>(f(src, i)));
}

/** sum a[i] * b[i] over `len` floats. */
@inline export function dot(a: usize, b: usize, len: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize>i << 2;
    acc = f32x4.add(acc, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  let s: f32 = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
  for (; i < len; i++) s += load<f32>(f(a, i)) * load<f32>(f(b, i));
  return s;
}

/** dst += a0 s0 + a1 s1 + a2 s2 + a3 s3 over `len` floats (four rows per pass over dst: a quarter of the loads and stores of four axpys). */
@inline export function axpy4(dst: usize, a0: f32, s0: usize, a1: f32, s1: usize, a2: f32, s2: usize, a3: f32, s3: usize, len: i32): void {
  const v0 = f32x4.splat(a0);
  const v1 = f32x4.splat(a1);
  const v2 = f32x4.splat(a2);
  const v3 = f32x4.splat(a3);
  let j = 0;
  for (; j + 4 <= len; j += 4) {
    const o = <usize>j << 2;
    let acc = v128.load(dst + o);
    acc = f32x4.add(acc, f32x4.mul(v0, v128.load(s0 + o)));
    acc = f32x4.add(acc, f32x4.mul(v1, v128.load(s1 + o)));
    acc = f32x4.add(acc, f32x4.mul(v2, v128.load(s2 + o)));
    acc = f32x4.add(acc, f32x4.mul(v3, v128.load(s3 + o)));
    v128.store(dst + o, acc);
  }
  for (; j < len; j++) {
    store<f32>(f(dst, j), load<f32>(f(dst, j)) + a0 * load<f32>(f(s0, j)) + a1 * load<f32>(f(s1, j)) + a2 * load<f32>(f(s2, j)) + a3 * load<f32>(f(s3, j)));
  }
}

/**
 * out[r, :] (+)= h[r, :] @ w for h [n, k], w [k, m]; `bias` (length m) first when not 0. Four rows
 * of w per pass; a block whose four inputs are all zero (common after relu) is skipped.
 */
export function matmul(h: usize, n: i32, k: i32, w: usize, m: i32, out: usize, bias: usize, accumulate: bool): void {
  if (m == 1) {
    // One output (a regression head): a dot product per row.
    const b: f32 = bias != 0 ? load<f32>(bias) : 0;
    for (let r = 0; r < n; r++) {
      const s = dot(f(h, r * k), w, k);
      store<f32>(f(out, r), accumulate ? load<f32>(f(out, r)) + s : b + s);
    }
    return;
  }
  const stride = <usize>m << 2;
  for (let r = 0; r < n; r++) {
    const row = f(out, r * m);
    if (!accumulate) {
      if (bias != 0) memory.copy(row, bias, stride);
      else memory.fill(row, 0, stride);
    }
    const hr = f(h, r * k);
    let i = 0;
    for (; i + 4 <= k; i += 4) {
      const a0 = load<f32>(f(hr, i));
      const a1 = load<f32>(f(hr, i + 1));
      const a2 = load<f32>(f(hr, i + 2));
      const a3 = load<f32>(f(hr, i + 3));
      if (a0 == 0 && a1 == 0 && a2 == 0 && a3 == 0) continue;
      const w0 = f(w, i * m);
      axpy4(row, a0, w0, a1, w0 + stride, a2, w0 + 2 * stride, a3, w0 + 3 * stride, m);
    }
    for (; i < k; i++) {
      const a = load<f32>(f(hr, i));
      if (a != 0) axpy(row, a, f(w, i * m), m);
    }
  }
}

/** wt [m, k] = w^T for w [k, m]. */
export function transpose(w: usize, k: i32, m: i32, wt: usize): void {
  for (let i = 0; i < k; i++) {
    const row = f(w, i * m);
    for (let j = 0; j < m; j++) store<f32>(f(wt, j * k + i), load<f32>(f(row, j)));
  }
}

/**
 * out (+)= d @ w^T for d [n, m], w [k, m]: w is transposed once into `wt` (scratch [m, k]) so the
 * product runs row-wise like the forward pass (dot products of short rows waste most of a vector).
 */
export function matmulTransposed(d: usize, n: i32, m: i32, w: usize, k: i32, out: usize, accumulate: bool, wt: usize): void {
  transpose(w, k, m, wt);
  matmul(d, n, m, wt, k, out, 0, accumulate);
}

/**
 * g[i, :] += sum_r h[r, i] d[r, :] for h [n, k], d [n, m] (h^T @ d), and gb += column sums of d
 * (when gb is not 0). Four examples per pass over a row of g.
 */
export function outerAccumulate(h: usize, n: i32, k: i32, d: usize, m: i32, g: usize, gb: usize): void {
  if (m == 1) {
    // One output: g [k] += d[r] h[r, :] row by row.
    for (let r = 0; r < n; r++) {
      const a = load<f32>(f(d, r));
      axpy(g, a, f(h, r * k), k);
      if (gb != 0) store<f32>(gb, load<f32>(gb) + a);
    }
    return;
  }
  const stride = <usize>m << 2;
  for (let i = 0; i < k; i++) {
    const gi = f(g, i * m);
    let r = 0;
    for (; r + 4 <= n; r += 4) {
      const a0 = load<f32>(f(h, r * k + i));
      const a1 = load<f32>(f(h, (r + 1) * k + i));
      const a2 = load<f32>(f(h, (r + 2) * k + i));
      const a3 = load<f32>(f(h, (r + 3) * k + i));
      if (a0 == 0 && a1 == 0 && a2 == 0 && a3 == 0) continue;
      const d0 = f(d, r * m);
      axpy4(gi, a0, d0, a1, d0 + stride, a2, d0 + 2 * stride, a3, d0 + 3 * stride, m);
    }
    for (; r < n; r++) {
      const a = load<f32>(f(h, r * k + i));
      if (a != 0) axpy(gi, a, f(d, r * m), m);
    }
  }
  if (gb != 0) for (let r = 0; r < n; r++) axpy(gb, 1, f(d, r * m), m);
}

// ---- vector updates over parameter vectors -----------------------------------------------------

/** dst = a + s * b over `len` floats (a gradient step; dst may alias a). */
export function step(dst: usize, a: usize, s: f32, b: usize, len: i32): void {
  if (dst != a) memory.copy(dst, a, <usize>len << 2);
  axpy(dst, s, b, len);
}

/** dst = a - rate .* b elementwise (Meta-SGD's step; dst may alias a). */
export function stepPerParameter(dst: usize, a: usize, rate: usize, b: usize, len: i32): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize>i << 2;
    v128.store(dst + o, f32x4.sub(v128.load(a + o), f32x4.mul(v128.load(rate + o), v128.load(b + o))));
  }
  for (; i < len; i++) store<f32>(f(dst, i), load<f32>(f(a, i)) - load<f32>(f(rate, i)) * load<f32>(f(b, i)));
}

/** dst = a .* b elementwise. */
export function multiply(dst: usize, a: usize, b: usize, len: i32): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize>i << 2;
    v128.store(dst + o, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < len; i++) store<f32>(f(dst, i), load<f32>(f(a, i)) * load<f32>(f(b, i)));
}

/** dst -= a .* b elementwise (Meta-SGD's rate gradient, -g_j .* v_j+1). */
export function subtractProduct(dst: usize, a: usize, b: usize, len: i32): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize>i << 2;
    v128.store(dst + o, f32x4.sub(v128.load(dst + o), f32x4.mul(v128.load(a + o), v128.load(b + o))));
  }
  for (; i < len; i++) store<f32>(f(dst, i), load<f32>(f(dst, i)) - load<f32>(f(a, i)) * load<f32>(f(b, i)));
}

/** Zeroes `len` floats. */
export function zero(dst: usize, len: i32): void {
  memory.fill(dst, 0, <usize>len << 2);
}

/** Copies `len` floats. */
export function copy(dst: usize, src: usize, len: i32): void {
  memory.copy(dst, src, <usize>len << 2);
}
