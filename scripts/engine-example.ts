/**
 * The engine on its own, as a notebook would use it (no database, no queue, no HTTP):
 * meta-train MAML on sinusoids, then adapt to a new task from 10 examples and predict.
 * Run: `npx tsx scripts/engine-example.ts [iterations]` (docs/engine.md). Type-checked by `npm test`.
 */
import { adapt, createFamily, initBackend, metaTrain, predict, Rng, taskParams } from '../src/meta/index.js';

const iterations = Number(process.argv[2] ?? 2000);
console.log(`backend: ${await initBackend()}`); // tensorflow-gpu > tensorflow > wasm > cpu
const sine = createFamily({ name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } });

for await (const event of metaTrain({ algorithm: 'maml', model: { hidden: [40, 40] }, families: sine, hyper: { iterations, evalEvery: 500 } })) {
  if (event.type === 'metrics') console.log(`iteration ${event.iteration}: held-out loss after adaptation ${event.valLoss.toFixed(3)}`);
  if (event.type !== 'result') continue;
  // A task never seen in training: 10 labelled examples to adapt on, 100 more to check on.
  const { support, query } = sine.sampleEpisode(new Rng(7), 'test', { shots: 10, queryShots: 100 });
  const adapted = adapt(event.model, support, { steps: 10 });
  const prediction = predict(event.model.spec, taskParams(event.model, adapted.params), query.x);
  if (prediction.kind !== 'regression') throw new Error('sinusoid is a regression family');
  const mse = prediction.values.reduce((sum, v, i) => sum + (v - query.y[i]) ** 2, 0) / query.n;
  console.log(`support loss ${adapted.supportLossBefore.toFixed(3)} -> ${adapted.supportLossAfter.toFixed(3)}; query MSE ${mse.toFixed(3)}`);
}
