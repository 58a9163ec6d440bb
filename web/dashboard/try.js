// A task end to end: create it from a meta-model, adapt it with 0 steps (the meta-model's own
// prediction: "unadapted") and then with the chosen steps, and show what changed: the support points
// and both predictions on a grid (regression, 1-d input), or the query set's confusion (classification);
// then offer the adapted model as a file (ONNX, TF.js).
import { api, download } from './api.js';
import { drawChart } from './chart.js';
import { metaModels } from './models.js';

const GRID = Array.from({ length: 101 }, (_, i) => -5 + i * 0.1);
let truth = null;

const status = (text) => { document.querySelector('#try-status').textContent = text; };

/** Offers the adapted task's model for download (ONNX and TF.js, GET /tasks/:id/model). */
function offerDownloads(taskId) {
  const box = document.querySelector('#try-download');
  box.dataset.taskId = taskId;
  box.hidden = false;
}

async function downloadModel(event) {
  const format = event.target.dataset.format;
  const taskId = document.querySelector('#try-download').dataset.taskId;
  if (!format || !taskId) return;
  try {
    const name = await download(`/tasks/${encodeURIComponent(taskId)}/model?format=${format}`);
    status(`Downloaded ${name}`);
  } catch (error) {
    status(`Download failed: ${error.message}`);
  }
}

/** A task of the MAML paper's sinusoid family: amplitude 0.1-5, phase 0-pi, K=10 inputs in [-5, 5]. */
function sampleSinusoid() {
  const amplitude = 0.1 + Math.random() * 4.9;
  const phase = Math.random() * Math.PI;
  const f = (x) => amplitude * Math.sin(x - phase);
  const x = Array.from({ length: 10 }, () => [-5 + Math.random() * 10]);
  truth = { f, label: `true: ${amplitude.toFixed(2)}·sin(x − ${phase.toFixed(2)})` };
  document.querySelector('#try-data').value = JSON.stringify({ support: { x, y: x.map(([v]) => Number(f(v).toFixed(4))) } });
}

function confusion(labels, predicted, nWay) {
  const matrix = Array.from({ length: nWay }, () => new Array(nWay).fill(0));
  labels.forEach((label, i) => { matrix[label][predicted[i]] += 1; });
  return matrix;
}

function drawConfusion(matrix, accuracy) {
  const box = document.querySelector('#try-confusion');
  const table = document.createElement('table');
  table.className = 'confusion';
  const head = table.createTHead().insertRow();
  head.insertCell().textContent = 'true \\ predicted';
  matrix.forEach((_, j) => { head.insertCell().textContent = String(j); });
  const body = table.createTBody();
  const max = Math.max(1, ...matrix.flat());
  matrix.forEach((row, i) => {
    const tr = body.insertRow();
    tr.insertCell().textContent = String(i);
    row.forEach((count, j) => {
      const td = tr.insertCell();
      td.textContent = String(count);
      td.style.background = `rgba(${i === j ? '21,128,61' : '185,28,28'},${(0.1 + 0.6 * count / max).toFixed(2)})`;
    });
  });
  const caption = table.createCaption();
  caption.textContent = `query set confusion after adaptation (accuracy ${(100 * accuracy).toFixed(1)}%)`;
  box.replaceChildren(table);
  box.hidden = false;
}

async function run(event) {
  event.preventDefault();
  const model = metaModels.find((m) => m.id === document.querySelector('#try-model').value);
  if (!model) return status('Choose a meta-model first.');
  let data;
  try {
    data = JSON.parse(document.querySelector('#try-data').value);
  } catch {
    return status('The support set is not valid JSON.');
  }
  const steps = Number(document.querySelector('#try-steps').value);
  document.querySelector('#try-download').hidden = true;
  try {
    status('Creating the task…');
    const task = await api('/tasks', { method: 'POST', body: { metaModelId: model.id, name: 'dashboard' } });
    const adapt = (n) => api(`/tasks/${task.id}/adapt`, { method: 'POST', body: { support: data.support, steps: n } });
    const predict = (x) => api(`/tasks/${task.id}/predict`, { method: 'POST', body: { x } });
    status('Adapting…');
    const before = await adapt(0);
    if (model.kind === 'regression') {
      const unadapted = model.inputDim === 1 ? await predict(GRID.map((x) => [x])) : null;
      const after = await adapt(steps);
      offerDownloads(task.id);
      const summary = `Task ${task.id}: support loss ${after.supportLoss.before.toPrecision(3)} → ${after.supportLoss.after.toPrecision(3)} in ${after.steps} steps (${after.durationMs.toFixed(1)} ms on the worker)`;
      if (!unadapted) return status(summary);
      const adapted = await predict(GRID.map((x) => [x]));
      const series = [
        { name: 'unadapted', label: 'unadapted', points: GRID.map((x, i) => [x, unadapted.predictions[i]]) },
        { name: 'adapted', label: 'adapted', points: GRID.map((x, i) => [x, adapted.predictions[i]]) },
        { name: 'support', label: 'support set', kind: 'points', points: data.support.x.map((x, i) => [x[0], data.support.y[i]]) },
      ];
      if (truth) series.unshift({ name: 'truth', label: 'true curve', points: GRID.map((x) => [x, truth.f(x)]) });
      const chart = document.querySelector('#try-chart');
      // An SVG element has no `hidden` property: the attribute itself goes.
      chart.removeAttribute('hidden');
      drawChart(chart, series, { xLabel: 'x', yLabel: 'y' });
      status(summary);
    } else {
      if (!data.query) return status('Classification: add a labelled "query" set to see its confusion.');
      const unadapted = await predict(data.query.x);
      const after = await adapt(steps);
      const adapted = await predict(data.query.x);
      offerDownloads(task.id);
      const labels = (p) => p.predictions.map((q) => q.label);
      const accuracy = (p) => labels(p).filter((l, i) => l === data.query.y[i]).length / data.query.y.length;
      drawConfusion(confusion(data.query.y, labels(adapted), model.nWay), accuracy(adapted));
      status(`Task ${task.id}: query accuracy ${(100 * accuracy(unadapted)).toFixed(1)}% unadapted → ${(100 * accuracy(adapted)).toFixed(1)}% adapted; support loss ${before.supportLoss.before.toPrecision(3)} → ${after.supportLoss.after.toPrecision(3)}`);
    }
  } catch (error) {
    status(`Failed: ${error.message}`);
  }
}

export function setUpTry() {
  document.querySelector('#try-sample').addEventListener('click', sampleSinusoid);
  document.querySelector('#try-data').addEventListener('input', () => { truth = null; });
  document.querySelector('#try-form').addEventListener('submit', run);
  document.querySelector('#try-download').addEventListener('click', downloadModel);
}
