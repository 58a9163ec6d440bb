// Jobs: the list with live status and progress (one event stream per unfinished job), and the
// selected job's meta-train and validation loss curves, validation with its 95% intervals and the
// best evaluation (the one hyper.keepBest stores) marked.
import { api, followEvents, TERMINAL } from './api.js';
import { describeArchitecture } from './architecture.js';
import { drawChart } from './chart.js';

/** Browsers allow 6 connections per host over HTTP/1.1: leave room for a study's stream and the ordinary calls. */
const MAX_STREAMS = 3;

const jobs = new Map();
const streams = new Map();
let selected = null;
let curve = [];

const tbody = () => document.querySelector('#jobs tbody');

function cell(row, text) {
  const td = document.createElement('td');
  if (text !== undefined) td.textContent = text;
  row.appendChild(td);
  return td;
}

function renderRow(job) {
  const row = document.createElement('tr');
  row.dataset.jobId = job.id;
  if (job.id === selected) row.classList.add('selected');
  cell(row, job.name ?? job.id.slice(0, 8));
  cell(row, job.algorithm);
  cell(row, describeArchitecture(job.model)).className = 'architecture';
  const badge = document.createElement('span');
  badge.className = `status ${job.status}`;
  badge.textContent = job.status;
  cell(row).appendChild(badge);
  const { iteration, iterations } = job.progress;
  const bar = document.createElement('span');
  bar.className = 'progress';
  bar.dataset.iteration = iteration;
  bar.dataset.iterations = iterations;
  const fill = document.createElement('span');
  fill.className = 'fill';
  fill.style.width = `${iterations > 0 ? (100 * iteration) / iterations : 0}%`;
  bar.appendChild(fill);
  const text = document.createElement('span');
  text.className = 'progress-text';
  text.textContent = `${iteration} / ${iterations}`;
  const td = cell(row);
  td.append(bar, text);
  cell(row, job.metrics ? job.metrics.valLoss.toPrecision(3) : '');
  cell(row, new Date(job.createdAt).toLocaleString());
  row.addEventListener('click', () => select(job.id));
  return row;
}

function render() {
  const rows = [...jobs.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1)).map(renderRow);
  tbody().replaceChildren(...rows);
  document.querySelector('#jobs-note').textContent = `(${streams.size} live)`;
}

function drawCurve() {
  const val = { name: 'valLoss', label: 'validation loss', points: curve.map((m) => [m.iteration, m.valLoss]) };
  // Points recorded before intervals were have none: bars only when every point has one.
  if (curve.length > 0 && curve.every((m) => m.valLossCi95 !== undefined)) val.ci = curve.map((m) => m.valLossCi95);
  const series = [{ name: 'trainLoss', label: 'meta-train loss', points: curve.map((m) => [m.iteration, m.trainLoss]) }, val];
  const best = curve.find((m) => m.iteration === jobs.get(selected)?.bestIteration);
  if (best) series.push({ name: 'best', label: 'best', kind: 'points', points: [[best.iteration, best.valLoss]] });
  drawChart(document.querySelector('#loss-chart'), series, { xLabel: 'iteration', yLabel: 'loss', logY: true });
}

/** `mean ± ci95` of an accuracy (in percent) or a loss. */
export function formatInterval(metric, { mean, ci95 }) {
  return metric === 'accuracy' ? `${(100 * mean).toFixed(1)}% ± ${(100 * ci95).toFixed(1)}` : `${mean.toPrecision(3)} ± ${ci95.toPrecision(2)}`;
}

/** The validation metric runs are selected on, with its interval. */
const describeValidation = (validation) => `val ${validation.metric} ${formatInterval(validation.metric, validation)}`;

function summarise(job) {
  const parts = [`${job.algorithm}`, describeArchitecture(job.model), `status ${job.status}`, `${job.progress.iteration}/${job.progress.iterations} iterations`];
  if (job.metrics) parts.push(`val loss ${job.metrics.valLoss.toPrecision(3)}`);
  if (job.metrics?.valAccuracy !== undefined) parts.push(`val accuracy ${(100 * job.metrics.valAccuracy).toFixed(1)}%`);
  if (job.bestValidation) parts.push(`best at iteration ${job.bestValidation.iteration}: ${describeValidation(job.bestValidation)}${job.hyper?.keepBest === false ? ' (keepBest off: the last is stored)' : ''}`);
  if (job.error) parts.push(`error: ${job.error}`);
  document.querySelector('#job-summary').textContent = parts.join(' · ');
}

async function select(id) {
  selected = id;
  const job = jobs.get(id);
  document.querySelector('#job-detail').hidden = false;
  document.querySelector('#job-title').textContent = job?.name ?? id;
  if (job) summarise(job);
  render();
  const { items } = await api(`/meta-train/${encodeURIComponent(id)}/metrics`);
  if (selected !== id) return;
  // Points that arrived on the stream meanwhile are kept (the history may predate them).
  const seen = new Set(items.map((m) => m.iteration));
  curve = [...items, ...curve.filter((m) => !seen.has(m.iteration) && m.jobId === id)].sort((a, b) => a.iteration - b.iteration);
  drawCurve();
}

function onEvent(id, { event, data }) {
  const job = jobs.get(id);
  if (!job) return;
  if (event === 'progress' || event === 'status') job.progress = { iteration: data.iteration, iterations: data.iterations };
  if (event === 'status') {
    job.status = data.status;
    if (data.error) job.error = data.error;
  }
  if (event === 'metrics') {
    const { bestIteration, bestValidation, ...point } = data;
    Object.assign(job, { metrics: point, bestIteration, bestValidation });
    if (id === selected) {
      if (!curve.some((m) => m.iteration === point.iteration)) curve.push({ ...point, jobId: id });
      drawCurve();
    }
  }
  if (id === selected) summarise(job);
  render();
}

function follow(job) {
  if (streams.has(job.id) || streams.size >= MAX_STREAMS || TERMINAL.includes(job.status)) return;
  const controller = new AbortController();
  streams.set(job.id, controller);
  followEvents(job.id, (event) => onEvent(job.id, event), controller.signal).finally(() => {
    streams.delete(job.id);
    render();
  });
}

/** Reloads the newest jobs (new ones appear; finished ones get their final record) and follows the live ones. */
export async function refreshJobs() {
  const { items } = await api('/meta-train?limit=20');
  for (const job of items) {
    const known = jobs.get(job.id);
    // A streamed job's progress may be newer than the row read a moment ago.
    if (known && streams.has(job.id) && known.progress.iteration > job.progress.iteration) job.progress = known.progress;
    jobs.set(job.id, job);
  }
  render();
  for (const job of items) follow(job);
  if (selected === null && items.length > 0) await select((items.find((j) => j.status === 'running') ?? items[0]).id);
}

/** Stops every stream (sign-out). */
export function stopJobs() {
  for (const controller of streams.values()) controller.abort();
  streams.clear();
  jobs.clear();
  selected = null;
  curve = [];
}
