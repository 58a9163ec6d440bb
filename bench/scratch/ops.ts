import { initBackend, tf } from '../../src/meta/backend.js';
import { conv3x3, maxPool2x2 } from '../../src/meta/conv.js';
import { plainMatMul } from '../../src/meta/ops.js';
await initBackend((process.argv[2] ?? 'wasm') as never);
const time = (name: string, f: () => tf.Tensor | tf.Tensor[]) => {
  for (let i = 0; i < 3; i++) tf.tidy(() => { const r = f(); (Array.isArray(r) ? r : [r]).forEach((t) => t.dataSync()); });
  const n = 10; const s = performance.now();
  for (let i = 0; i < n; i++) tf.tidy(() => { const r = f(); (Array.isArray(r) ? r : [r]).forEach((t) => t.dataSync()); });
  console.log(name.padEnd(40), ((performance.now() - s) / n).toFixed(2), 'ms');
};
const N = 80;
for (const [h, cin] of [[14, 1], [7, 64], [4, 64], [2, 64]] as const) {
  const x = tf.randomUniform([N, h, h, cin]); const w = tf.randomUniform([3, 3, cin, 64]); const dy = tf.randomUniform([N, h, h, 64]);
  time(`conv2d fwd ${h}x${h}x${cin}`, () => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'));
  time(`conv3x3 grads ${h}`, () => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv3x3(a, b), dy)))([x, w]));
  time(`pool ${h}`, () => maxPool2x2(tf.relu(dy)));
  time(`pool+grad ${h}`, () => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(maxPool2x2(a), tf.ones(maxPool2x2(a).shape))))(tf.relu(dy)));
  time(`tf.maxPool ${h}`, () => tf.maxPool(dy as tf.Tensor4D, 2, 2, 'same'));
  time(`layernorm-ish ${h}`, () => { const c = tf.sub(dy, tf.mean(dy, [1, 2, 3], true)); return tf.mul(c, tf.rsqrt(tf.add(tf.mean(tf.square(c), [1, 2, 3], true), 1e-5))); });
}
const a = tf.randomUniform([576, 3920]); const b = tf.randomUniform([3920, 64]);
time('matmul 576x3920x64', () => plainMatMul(a, b));
