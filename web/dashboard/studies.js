// Studies: the tenant's studies, and the selected one's leaderboard, live from its event stream (each
// event is the whole study): trials by rung with the hyper-parameters that tell candidates apart and
// their best validation metric with its 95% interval, the winner, and the decision on the test split
// against the baselines. The winner's evaluation opens in the evaluation panel.
import { api, followStudy, TERMINAL } from './api.js';
import { describeArchitecture } from './architecture.js';
import { selectModel } from './evaluations.js';
import { formatInterval } from './jobs.js';

// These adapt without an inner loop (ProtoNets: prototypes; multitask: a head fitted in closed form)
// and meta-learn no head, so inner lr, inner steps and zero head say nothing about them.
const NO_INNER_LOOP = ['protonet', 'multitask'];

const studies = new Map();
let selected = null;
let stream = null;

const $ = (selector) => document.querySelector(selector);

function element(name, text, className) {
  const node = document.createElement(name);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function badge(status) {
  return element('span', status, `status ${status}`);
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const value of cells) {
    const td = document.createElement('td');
    if (typeof value === 'string') td.textContent = value;
    else td.appendChild(value);
    tr.appendChild(td);
  }
  return tr;
}

const decisionText = (study) => (study.decision ? (study.decision.promoted ? `promoted to ${study.decision.alias}` : 'not promoted') : '');

function renderList() {
  const rows = [...studies.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1)).map((study) => {
    const top = study.settings.rungs.length - 1;
    const tr = row([study.name, badge(study.status), study.settings.kind, String(study.settings.candidates.length),
      `${study.rung} / ${top}`, study.winner?.algorithm ?? '', decisionText(study), new Date(study.createdAt).toLocaleString()]);
    tr.dataset.studyId = study.id;
    if (study.id === selected) tr.classList.add('selected');
    tr.addEventListener('click', () => select(study.id));
    return tr;
  });
  $('#studies tbody').replaceChildren(...rows);
}

/** The rung's trials, best validation first (what the rung ranks them by); trials without one yet last. */
function ranked(trials) {
  const better = (a, b) => (a.metric === 'accuracy' ? b.mean - a.mean : a.mean - b.mean);
  return [...trials].sort((a, b) => (a.validation && b.validation ? better(a.validation, b.validation) : a.validation ? -1 : b.validation ? 1 : a.candidate - b.candidate));
}

function rungTable(study, rung, trials) {
  const plan = study.settings.rungs[rung];
  const table = element('table', undefined, 'leaderboard');
  table.dataset.rung = rung;
  table.appendChild(element('caption', `Rung ${rung}: ${plan.trials} trial${plan.trials === 1 ? '' : 's'} to ${plan.iterations} iterations`));
  const head = row(['#', 'Algorithm', 'Inner lr', 'Inner steps', 'Zero head', 'Iterations', `Validation ${study.settings.kind === 'classification' ? 'accuracy' : 'loss'} (mean ± 95% CI)`, 'Status']);
  table.appendChild(element('thead')).appendChild(head);
  const body = table.appendChild(element('tbody'));
  for (const trial of ranked(trials)) {
    const { hyper } = trial;
    const inner = !NO_INNER_LOOP.includes(trial.algorithm);
    const tr = row([String(trial.candidate), trial.algorithm, inner ? String(hyper.innerLr) : '—', inner ? String(hyper.innerSteps) : '—',
      inner ? (hyper.zeroHead ? 'on' : 'off') : '—', String(trial.iterations),
      trial.validation ? formatInterval(trial.validation.metric, trial.validation) : '', badge(trial.status)]);
    tr.dataset.candidate = trial.candidate;
    tr.dataset.status = trial.status;
    tr.cells[6].className = 'validation';
    if (trial.status === 'winner') tr.classList.add('winner');
    body.appendChild(tr);
  }
  return table;
}

function renderDecision(study) {
  const out = $('#study-decision');
  const { decision, winner } = study;
  if (!decision) {
    out.replaceChildren(element('p', study.status === 'running' ? 'No decision yet: the winner is evaluated on the test split once the last rung ends.' : study.error ?? '', 'muted'));
    return;
  }
  const verdict = element('p', undefined, `verdict ${decision.promoted ? 'promoted' : 'kept'}`);
  verdict.append(element('strong', decision.promoted ? `Promoted: ${study.name}@${decision.alias} is the winner.` : 'Not promoted.'), ` ${decision.reason}`);
  const table = element('table', undefined, 'baselines');
  table.appendChild(element('thead')).appendChild(row(['Method', `Test ${decision.metric} (mean ± 95% CI)`, 'Against the winner']));
  const body = table.appendChild(element('tbody'));
  const first = row([`winner (${winner.algorithm})`, formatInterval(decision.metric, decision.winner), '']);
  first.classList.add('winner');
  body.appendChild(first);
  for (const b of decision.baselines) {
    const tr = row([b.method, formatInterval(decision.metric, b), b.outcome]);
    tr.dataset.outcome = b.outcome;
    body.appendChild(tr);
  }
  const open = element('button', "Show the winner's evaluation");
  open.type = 'button';
  open.addEventListener('click', async () => {
    await selectModel(await api(`/meta-models/${winner.metaModelId}`));
    $('#evaluation').scrollIntoView();
  });
  out.replaceChildren(verdict, table, open);
}

function renderDetail() {
  const study = studies.get(selected);
  if (!study) return;
  const { settings } = study;
  $('#study-detail').hidden = false;
  $('#study-title').textContent = study.name;
  $('#study-summary').textContent = [`status ${study.status}`, `${settings.kind}`, describeArchitecture(settings.model), `${settings.shots} shots`,
    `${settings.candidates.length} candidates`, `successive halving (eta ${settings.eta}) over ${settings.rungs.length} rungs`,
    `${settings.cost} of ${settings.budget.iterations} meta-iterations`].join(' · ');
  const rungs = settings.rungs.map((_, r) => study.trials.filter((t) => t.rung === r)).map((trials, r) => [r, trials]).filter(([, trials]) => trials.length > 0);
  // The top rung first: where the winner is decided.
  $('#study-rungs').replaceChildren(...rungs.reverse().map(([r, trials]) => rungTable(study, r, trials)));
  renderDecision(study);
}

function onStudy(study) {
  studies.set(study.id, study);
  renderList();
  if (study.id === selected) renderDetail();
}

async function select(id) {
  stream?.abort();
  stream = null;
  selected = id;
  renderList();
  renderDetail();
  if (TERMINAL.includes(studies.get(id)?.status)) return;
  const controller = new AbortController();
  stream = controller;
  await followStudy(id, ({ data }) => onStudy(data), controller.signal);
  if (stream === controller) stream = null;
}

/** Reloads the tenant's newest studies (a followed study's stream may be newer than this read). */
export async function refreshStudies() {
  const { items } = await api('/studies?limit=20');
  for (const study of items) if (!(study.id === selected && stream)) studies.set(study.id, study);
  renderList();
  if (selected) renderDetail();
}

/** Stops the stream (sign-out). */
export function stopStudies() {
  stream?.abort();
  stream = null;
  studies.clear();
  selected = null;
}
