// Entry: sign in with an API key (kept in sessionStorage), then the board: jobs, curves, studies, models, tasks (live curves), try a task.
import { api, ApiError, session } from './api.js';
import { refreshJobs, stopJobs } from './jobs.js';
import { refreshModels } from './models.js';
import { refreshStudies, stopStudies } from './studies.js';
import { refreshTasks } from './tasks.js';
import { setUpEvaluations } from './evaluations.js';
import { setUpTry } from './try.js';

const REFRESH_MS = 5000;
let timer = null;

function show(signedIn) {
  document.querySelector('#login').hidden = signedIn;
  document.querySelector('#board').hidden = !signedIn;
  document.querySelector('#sign-out').hidden = !signedIn;
}

async function refresh() {
  try {
    await Promise.all([refreshJobs(), refreshStudies(), refreshModels(), refreshTasks()]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) signOut('The key was refused (revoked?). Enter another.');
  }
}

async function open() {
  show(true);
  // No part of the key is shown: a screenshot or a shoulder must not carry it away.
  document.querySelector('#whoami').textContent = 'signed in (the key stays in this tab)';
  await refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

function signOut(message = '') {
  clearInterval(timer);
  stopJobs();
  stopStudies();
  session.clear();
  document.querySelector('#whoami').textContent = '';
  document.querySelector('#login-error').textContent = message;
  show(false);
}

async function signIn(event) {
  event.preventDefault();
  const input = document.querySelector('#login-key');
  session.set(input.value.trim());
  input.value = '';
  try {
    await api('/meta-train?limit=1');
  } catch (error) {
    session.clear();
    document.querySelector('#login-error').textContent = error instanceof ApiError && error.status === 401 ? 'Unknown or revoked API key.' : `Could not reach the API: ${error.message}`;
    return;
  }
  document.querySelector('#login-error').textContent = '';
  await open();
}

document.querySelector('#login-form').addEventListener('submit', signIn);
document.querySelector('#sign-out').addEventListener('click', () => signOut());
setUpTry();
setUpEvaluations();
if (session.key) void open();
else show(false);
