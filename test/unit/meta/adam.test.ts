/**
 * The outer-loop optimiser: PyTorch's Adam update bit for bit (float64 arithmetic per element, stored
 * as float32), and all-or-nothing steps: an update that would leave a moment or a parameter
 * non-finite in float32 is refused and changes nothing.
 */

import { describe, expect, it } from 'vitest';
import { Adam, type AdamState } from '../../../src/meta/adam.js';
import type { ParamArrays } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';

function params(rng: Rng): ParamArrays {
  const draw = (n: number) => Float32Array.from({ length: n }, () => rng.uniform(-1, 1));
  return { 'body.0.weight': { shape: [3, 4], data: draw(12) }, 'head.bias': { shape: [1], data: draw(1) } };
}

function gradients(rng: Rng, scale = 1): Record<string, Float32Array> {
  return { 'body.0.weight': Float32Array.from({ length: 12 }, () => scale * rng.uniform(-1, 1)), 'head.bias': Float32Array.from([scale * rng.uniform(-1, 1)]) };
}

const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

function expectSame(a: ParamArrays, b: ParamArrays): void {
  for (const name of Object.keys(a)) expect(bytes(a[name].data).equals(bytes(b[name].data))).toBe(true);
}

/** The textbook update (Kingma & Ba, PyTorch's epsilon placement), element by element. */
function reference(w: ParamArrays, grads: Record<string, Float32Array>[], lr: number): ParamArrays {
  const out = structuredClone(w);
  const m = Object.fromEntries(Object.entries(w).map(([n, p]) => [n, new Float32Array(p.data.length)]));
  const v = Object.fromEntries(Object.entries(w).map(([n, p]) => [n, new Float32Array(p.data.length)]));
  grads.forEach((g, k) => {
    const t = k + 1;
    for (const name of Object.keys(out)) {
      for (let i = 0; i < g[name].length; i++) {
        m[name][i] = 0.9 * m[name][i] + 0.1 * g[name][i];
        v[name][i] = 0.999 * v[name][i] + (1 - 0.999) * g[name][i] * g[name][i];
        out[name].data[i] -= ((lr / (1 - 0.9 ** t)) * m[name][i]) / (Math.sqrt(v[name][i]) / Math.sqrt(1 - 0.999 ** t) + 1e-8);
      }
    }
  });
  return out;
}

describe('Adam', () => {
  it('matches the textbook update bit for bit over several steps', () => {
    const rng = new Rng(1);
    const w = params(rng);
    const grads = Array.from({ length: 5 }, () => gradients(rng));
    const expected = reference(w, grads, 0.01);
    const adam = new Adam({ lr: 0.01 }, w);
    for (const g of grads) expect(adam.step(w, g)).toBe(true);
    expectSame(w, expected);
    expect(adam.steps).toBe(5);
  });

  it('refuses a step whose second moment overflows float32 and changes nothing', () => {
    const rng = new Rng(2);
    const w = params(rng);
    const adam = new Adam({ lr: 0.01 }, w);
    adam.step(w, gradients(rng));
    const before: { w: ParamArrays; state: AdamState } = { w: structuredClone(w), state: adam.getState() };
    // 1e21 squared is 1e42 > 3.4e38: finite gradient, infinite second moment.
    const huge = gradients(rng, 1e21);
    expect(Object.values(huge).every((g) => g.every(Number.isFinite))).toBe(true);
    expect(adam.step(w, huge)).toBe(false);
    expectSame(w, before.w);
    const after = adam.getState();
    expect(after.t).toBe(1);
    expectSame(after.m, before.state.m);
    expectSame(after.v, before.state.v);
    // Clipping (scale) keeps the same gradient usable.
    expect(adam.step(w, huge, 1e-21)).toBe(true);
    expect(adam.steps).toBe(2);
  });

  it('refuses a step that would take a parameter past float32 range', () => {
    const w: ParamArrays = { 'head.bias': { shape: [1], data: Float32Array.from([-3.4e38]) } };
    const adam = new Adam({ lr: 1e37 }, w);
    expect(adam.step(w, { 'head.bias': Float32Array.from([1]) })).toBe(false);
    expect(w['head.bias'].data[0]).toBe(Math.fround(-3.4e38));
    expect(adam.steps).toBe(0);
  });

  it('continues from a saved state exactly as without the interruption', () => {
    const rng = new Rng(3);
    const w = params(rng);
    const grads = Array.from({ length: 4 }, () => gradients(rng));
    const a = structuredClone(w);
    const adamA = new Adam({ lr: 0.01 }, a);
    for (const g of grads) adamA.step(a, g);
    const b = structuredClone(w);
    const adamB = new Adam({ lr: 0.01 }, b);
    adamB.step(b, grads[0]);
    adamB.step(b, grads[1]);
    const resumed = new Adam({ lr: 0.01 }, b, structuredClone(adamB.getState()));
    resumed.step(b, grads[2]);
    resumed.step(b, grads[3]);
    expectSame(b, a);
  });
});
