/**
 * The demo's adaptation part: new sinusoid tasks the meta-model never saw, each adapted from 10
 * examples through the API, predicted on a grid, and compared with the true curve next to the
 * unadapted meta-model, as in Figure 2 of the MAML paper. Each task is adapted twice: first with
 * 0 steps (head version 1 = the meta-model itself, the "pre-update" baseline), then with 10 steps
 * (version 2), so the same predict route shows both and the head cache moving between versions.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { orThrow, type AdaptResult, type FastadaptClient } from '../../clients/typescript/src/index.js';
import { Rng } from '../../src/meta/rng.js';
import { figureSvg, type Panel } from './svg.js';

/** New tasks: amplitude and phase of y = A sin(x - phase), inside the family's ranges. */
const TASKS = [
  { amplitude: 4.2, phase: 0.6 },
  { amplitude: 2.0, phase: 2.4 },
  { amplitude: 0.9, phase: 1.5 },
] as const;

const SHOTS = 10;
const STEPS = 10;
const INNER_LR = 0.01;
const GRID = Array.from({ length: 101 }, (_, i) => -5 + i / 10);

/** POST /tasks/{id}/adapt, waiting (the default) for the new head version: the 200 answer. */
async function adapt(api: FastadaptClient, taskId: string, body: { support: { x: number[][]; y: number[] }; steps: number; innerLr?: number }): Promise<AdaptResult> {
  const call = api.POST('/tasks/{id}/adapt', { params: { path: { id: taskId } }, body });
  const result = await orThrow(call);
  const { response } = await call;
  // 202: still queued after ADAPT_WAIT_MS (a busy worker pool); the demo needs the head now.
  if (response.status !== 200) throw new Error(`adapting task ${taskId} did not finish within the wait (answered ${response.status})`);
  return result as AdaptResult;
}

/** GET /predict on the grid (the query-string form, one `x` per input); a regression task. */
async function predictGrid(api: FastadaptClient, taskId: string): Promise<{ headVersion: number; predictions: number[] }> {
  const answer = await orThrow(api.GET('/predict', { params: { query: { taskId, x: GRID.map((x) => x.toFixed(2)) } } }));
  return { headVersion: answer.headVersion, predictions: answer.predictions as number[] };
}

const mse = (predicted: number[], truth: number[]) => predicted.reduce((s, p, i) => s + (p - truth[i]) ** 2, 0) / truth.length;

/**
 * Runs the adaptation tour against `metaModel` (a reference such as `sine-maml@latest`), writes the
 * figure under `outDir`, and returns the lines to print.
 */
export async function adaptNewSines(api: FastadaptClient, metaModel: string, outDir: string): Promise<string[]> {
  const lines: string[] = [];
  const panels: Panel[] = [];
  const rng = new Rng(2026);
  const errors = { unadapted: 0, adapted: 0 };
  for (const [i, { amplitude, phase }] of TASKS.entries()) {
    const curve = (x: number) => amplitude * Math.sin(x - phase);
    const xs = Array.from({ length: SHOTS }, () => rng.uniform(-5, 5));
    const support = { x: xs.map((x) => [x]), y: xs.map(curve) };
    const task = await orThrow(api.POST('/tasks', { body: { metaModelId: metaModel, name: `sine A=${amplitude} phase=${phase}` } }));

    await adapt(api, task.id, { support, steps: 0 });
    const before = await predictGrid(api, task.id);
    const started = performance.now();
    const adapted = await adapt(api, task.id, { support, steps: STEPS, innerLr: INNER_LR });
    const roundTrip = performance.now() - started;
    const after = await predictGrid(api, task.id);
    if (after.headVersion !== adapted.headVersion) throw new Error(`predict answered head ${after.headVersion} right after adapting to ${adapted.headVersion}`);

    const truth = GRID.map(curve);
    const e0 = mse(before.predictions, truth);
    const e1 = mse(after.predictions, truth);
    errors.unadapted += e0 / TASKS.length;
    errors.adapted += e1 / TASKS.length;
    lines.push(
      `task ${i + 1} (A=${amplitude}, phase=${phase}): grid MSE unadapted ${e0.toFixed(3)} -> adapted ${e1.toFixed(3)}; ` +
        `head v${adapted.headVersion}, support loss ${adapted.supportLoss.before.toFixed(3)} -> ${adapted.supportLoss.after.toFixed(3)}, ` +
        `adapt ${roundTrip.toFixed(1)} ms round trip (${adapted.durationMs.toFixed(1)} ms in the worker)`,
    );
    panels.push({
      title: `A=${amplitude}, phase=${phase}: MSE ${e0.toFixed(2)} -> ${e1.toFixed(2)}`,
      series: [
        { label: 'true curve', color: '#d62728', points: GRID.map((x, j) => [x, truth[j]]) },
        { label: 'meta-model (pre-update)', color: '#7f7f7f', style: 'dashed', points: GRID.map((x, j) => [x, before.predictions[j]]) },
        { label: `after ${STEPS} steps`, color: '#2ca02c', points: GRID.map((x, j) => [x, after.predictions[j]]) },
        { label: `${SHOTS} support points`, color: '#9467bd', style: 'markers', points: xs.map((x) => [x, curve(x)]) },
      ],
    });
  }
  lines.push(`mean grid MSE over ${TASKS.length} new tasks: unadapted ${errors.unadapted.toFixed(3)}, adapted ${errors.adapted.toFixed(3)}`);
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, 'sine-adaptation.svg');
  writeFileSync(file, figureSvg(panels, { xRange: [-5, 5], yRange: [-5, 5] }));
  lines.push(`figure (true curve, support points, pre-update and adapted predictions): ${file}`);
  return lines;
}
