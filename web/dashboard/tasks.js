// Tasks: each one's examples, head versions and live (prequential) record; click one for its curve.
import { api } from './api.js';
import { drawChart } from './chart.js';
import { formatLive, liveCurve } from './live.js';

let selectedId = null;

function drawLive(task) {
  const { metric, recent, allTime } = task.live;
  document.querySelector('#task-title').textContent = task.name ?? task.id;
  document.querySelector('#task-summary').textContent = [
    `all-time ${formatLive({ metric, ...allTime }) || 'nothing scored yet'}`,
    `last ${recent.scored}: ${formatLive({ metric, ...recent }) || '-'}`,
    task.pinnedVersion ? `serving pinned version ${task.pinnedVersion} of ${task.headVersion}` : `serving version ${task.headVersion ?? '-'}`,
  ].join(' · ');
  const series = [{ name: 'live', label: metric === 'accuracy' ? 'running accuracy' : 'running MSE', points: liveCurve(recent.scores) }];
  drawChart(document.querySelector('#task-chart'), series, { xLabel: `scored example (the last ${recent.scored})`, yLabel: metric, logY: metric === 'mse' });
  document.querySelector('#task-detail').hidden = false;
}

export async function refreshTasks() {
  const { items } = await api('/tasks?limit=50');
  const rows = items.map((task) => {
    const row = document.createElement('tr');
    row.dataset.taskId = task.id;
    if (task.id === selectedId) row.classList.add('selected');
    row.addEventListener('click', () => {
      selectedId = task.id;
      for (const other of document.querySelectorAll('#tasks tbody tr')) other.classList.toggle('selected', other === row);
      drawLive(task);
    });
    const version = task.headVersion === null ? '-' : task.pinnedVersion ? `v${task.pinnedVersion} (pinned; latest v${task.headVersion})` : `v${task.headVersion}`;
    for (const text of [task.name ?? task.id.slice(0, 8), task.kind, task.readapt, String(task.exampleCount), version, formatLive({ metric: task.live.metric, ...task.live.recent })]) {
      const td = document.createElement('td');
      td.textContent = text;
      row.appendChild(td);
    }
    return row;
  });
  document.querySelector('#tasks tbody').replaceChildren(...rows);
  const selected = items.find((task) => task.id === selectedId);
  if (selected) drawLive(selected);
}
