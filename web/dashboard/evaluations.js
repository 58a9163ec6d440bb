// The selected meta-model's evaluation: is meta-learning worth it on these tasks, and from how many
// examples? Its newest evaluation is drawn as loss (or accuracy) against shots, one line per method
// (the adapted meta-model per number of inner steps, and the baselines) with 95% confidence bars;
// the form starts a new one on the worker pool and the view follows it until it ends.
import { api } from './api.js';
import { describeArchitecture } from './architecture.js';
import { drawChart } from './chart.js';

const POLL_MS = 1000;
let model = null;
let shown = null;
let timer = null;

const $ = (selector) => document.querySelector(selector);

/** One series per method (and per steps for 'adapted'), points ordered by shots. */
function seriesOf(rows, metric) {
  const byName = new Map();
  const adaptedSteps = [...new Set(rows.filter((r) => r.method === 'adapted').map((r) => r.steps))];
  for (const row of rows) {
    const value = row[metric];
    if (!value) continue;
    const adapted = row.method === 'adapted';
    const name = adapted ? `adapted-${row.steps}` : row.method;
    if (!byName.has(name)) {
      const step = adaptedSteps.indexOf(row.steps);
      byName.set(name, {
        name,
        className: adapted ? `adapted step${step}` : row.method,
        label: adapted ? `adapted (${row.steps} step${row.steps === 1 ? '' : 's'})` : row.method,
        points: [],
        ci: [],
      });
    }
    const series = byName.get(name);
    series.points.push([row.shots, value.mean]);
    series.ci.push(value.ci95);
  }
  const series = [...byName.values()];
  // Bars of the methods at one number of shots side by side, 6 px apart, around the point.
  series.forEach((s, i) => { s.dodge = (i - (series.length - 1) / 2) * 6; });
  return series;
}

function draw() {
  const chart = $('#evaluation-chart');
  const status = $('#evaluation-status');
  // An SVG element has no `hidden` property: the attribute itself is toggled.
  if (!shown) {
    chart.toggleAttribute('hidden', true);
    status.textContent = 'No evaluation of this meta-model yet.';
    return;
  }
  const { settings } = shown;
  const where = settings.familyId ? `family ${settings.familyId}` : "its families' test split";
  status.textContent = `Evaluation ${shown.status}: ${settings.tasks} held-out tasks per number of shots from ${where}, ${settings.queryShots} query examples each (seed ${settings.seed}).`
    + (shown.error ? ` ${shown.error}` : '');
  chart.toggleAttribute('hidden', shown.status !== 'succeeded');
  if (shown.status !== 'succeeded') return;
  const metric = $('#evaluation-metric').value === 'accuracy' && shown.rows.some((r) => r.accuracy) ? 'accuracy' : 'loss';
  drawChart(chart, seriesOf(shown.rows, metric), { xLabel: 'shots (support examples per task or class)', yLabel: `query ${metric}, mean and 95% CI`, logY: metric === 'loss' });
}

/** Follows `evaluation` until it ends, redrawing. */
async function follow(evaluation) {
  clearTimeout(timer);
  shown = evaluation;
  draw();
  if (evaluation.status !== 'queued' && evaluation.status !== 'running') return;
  const forModel = model.id;
  timer = setTimeout(async () => {
    const next = await api(`/meta-models/${forModel}/evaluations/${evaluation.id}`).catch(() => evaluation);
    if (model?.id === forModel) await follow(next);
  }, POLL_MS);
}

/** Shows `selected`'s newest evaluation (the models table calls this when a row is clicked). */
export async function selectModel(selected) {
  model = selected;
  $('#evaluation').hidden = false;
  $('#evaluation-title').textContent = `${selected.name}@${selected.version} (${selected.algorithm}, ${describeArchitecture(selected.model)})`;
  $('#evaluation-metric').disabled = selected.kind !== 'classification';
  if (selected.kind !== 'classification') $('#evaluation-metric').value = 'loss';
  const { items } = await api(`/meta-models/${selected.id}/evaluations?limit=1`);
  if (model?.id === selected.id) await follow(items[0] ?? null);
}

async function start(event) {
  event.preventDefault();
  if (!model) return;
  const shots = $('#evaluation-shots').value.split(/[\s,]+/).filter(Boolean).map(Number);
  const body = { shots, tasks: Number($('#evaluation-tasks').value) };
  try {
    await follow(await api(`/meta-models/${model.id}/evaluations`, { method: 'POST', body }));
  } catch (error) {
    $('#evaluation-status').textContent = `Refused: ${error.message}`;
  }
}

export function setUpEvaluations() {
  $('#evaluation-form').addEventListener('submit', start);
  $('#evaluation-metric').addEventListener('change', draw);
}
