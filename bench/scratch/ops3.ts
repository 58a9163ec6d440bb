import { initBackend, tf } from '../../src/meta/backend.js';
import { plainMatMul } from '../../src/meta/ops.js';
await initBackend('wasm');
const time = (f: () => tf.Tensor) => {
  for (let i = 0; i < 2; i++) tf.tidy(() => { f().dataSync(); });
  const n = 8; const s = performance.now();
  for (let i = 0; i < n; i++) tf.tidy(() => { f().dataSync(); });
  return ((performance.now() - s) / n).toFixed(2);
};
const N = 80;
function im2colDw(x: tf.Tensor, dy: tf.Tensor) {
  const [n, h, w, cin] = x.shape as number[]; const cout = dy.shape[3] as number;
  const padded = tf.pad(tf.transpose(x, [3, 0, 1, 2]), [[0, 0], [0, 0], [1, 1], [1, 1]]);
  const taps: tf.Tensor[] = [];
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) taps.push(tf.slice(padded, [0, 0, a, b], [cin, n, h, w]));
  return tf.reshape(plainMatMul(tf.reshape(tf.stack(taps), [9 * cin, n * h * w]), tf.reshape(dy, [n * h * w, cout])), [3, 3, cin, cout]);
}
function im2colNhwc(x: tf.Tensor, dy: tf.Tensor) {
  // patches [N h w, 9 cin] via concat on channel axis, then transpose-free: dw = patches^T dy  -> matMul(transposeA)
  const [n, h, w, cin] = x.shape as number[]; const cout = dy.shape[3] as number;
  const padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]);
  const taps: tf.Tensor[] = [];
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) taps.push(tf.slice(padded, [0, a, b, 0], [n, h, w, cin]));
  const cols = tf.reshape(tf.concat(taps, 3), [n * h * w, 9 * cin]);
  return tf.reshape(plainMatMul(tf.transpose(cols), tf.reshape(dy, [n * h * w, cout])), [3, 3, cin, cout]);
}
function trick(x: tf.Tensor, dy: tf.Tensor) {
  const padded = tf.pad(tf.transpose(x, [3, 1, 2, 0]), [[0, 0], [1, 1], [1, 1], [0, 0]]);
  return tf.transpose(tf.conv2d(padded as tf.Tensor4D, tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D, 1, 'valid'), [1, 2, 0, 3]);
}
for (const [h, cin] of [[14, 1], [7, 64], [4, 64], [2, 64]] as const) {
  const x = tf.randomUniform([N, h, h, cin]); const dy = tf.randomUniform([N, h, h, 64]); const w = tf.randomUniform([3, 3, 64, cin]);
  console.log(h, cin, 'im2col', time(() => im2colDw(x, dy)), 'im2colNhwc', time(() => im2colNhwc(x, dy)), 'trick', time(() => trick(x, dy)), 'dx', time(() => tf.conv2d(dy as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')), 'fwd', time(() => tf.conv2d(x as tf.Tensor4D, tf.transpose(w, [0, 1, 3, 2]) as tf.Tensor4D, 1, 'same')));
}
