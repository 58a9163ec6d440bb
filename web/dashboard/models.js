// Meta-models with their versions and aliases; the list also feeds the task panel's choice.
import { api } from './api.js';
import { describeArchitecture } from './architecture.js';
import { selectModel } from './evaluations.js';

export let metaModels = [];
let selectedId = null;

export async function refreshModels() {
  ({ items: metaModels } = await api('/meta-models?limit=50'));
  const rows = metaModels.map((model) => {
    const row = document.createElement('tr');
    row.dataset.metaModelId = model.id;
    if (model.id === selectedId) row.classList.add('selected');
    row.addEventListener('click', () => {
      selectedId = model.id;
      for (const other of document.querySelectorAll('#models tbody tr')) other.classList.toggle('selected', other === row);
      void selectModel(model);
    });
    const aliases = document.createElement('td');
    for (const alias of model.aliases) {
      const chip = document.createElement('span');
      chip.className = 'alias';
      chip.textContent = alias;
      aliases.appendChild(chip);
    }
    const cells = [[model.name], [`v${model.version}`], [model.algorithm], [describeArchitecture(model.model), 'architecture'], [model.nWay ? `${model.kind} (${model.nWay}-way)` : `${model.kind} (${model.inputDim}-d)`]];
    for (const [text, className] of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      if (className) td.className = className;
      row.appendChild(td);
    }
    row.appendChild(aliases);
    for (const text of [model.metrics?.valLoss?.toPrecision(3) ?? '', new Date(model.createdAt).toLocaleString()]) {
      const td = document.createElement('td');
      td.textContent = text;
      row.appendChild(td);
    }
    return row;
  });
  document.querySelector('#models tbody').replaceChildren(...rows);

  const select = document.querySelector('#try-model');
  const previous = select.value;
  select.replaceChildren(...metaModels.map((model) => {
    const option = document.createElement('option');
    option.value = model.id;
    option.textContent = `${model.name}@${model.version} (${model.algorithm}, ${describeArchitecture(model.model)}, ${model.kind})`;
    return option;
  }));
  if (metaModels.some((m) => m.id === previous)) select.value = previous;
}
