/**
 * `npm run demo`: a guided tour of a running fastadapt, end to end on the real Postgres and Redis
 * that scripts/setup.mjs made sure are up.
 *
 * It starts the service (api and worker in one process), waits until it is ready, shows what it runs
 * on and where its docs are, then makes an API key, defines the sinusoid task family, meta-trains MAML
 * on it with a progress bar fed by the job's event stream, shows the meta-model it produced, adapts
 * it to new sinusoids from 10 examples each (errors against the true curves, and an SVG figure under
 * demo-output/), and shuts the service down the way an orchestrator would. Each step is one function in the list below.
 *
 * Flags: `--keep` leaves the service running (Ctrl-C stops it) to explore /docs by hand;
 * `--iterations N` meta-trains for N iterations instead of 5000.
 */
import { join } from 'node:path';
import { createFastadaptClient, jobEvents, orThrow, type FastadaptClient } from '../clients/typescript/src/index.js';
import { loadConfig } from '../src/config.js';
import { createDb } from '../src/db/client.js';
import { createApiKey } from '../src/db/repositories/api-keys.js';
import { errorMessage } from '../src/util/error-reason.js';
import { adaptNewSines } from './demo/adapt.js';
import { ProgressBar } from './demo/events.js';
import { runSteps, StepError, type Step } from './demo/progress.js';
import { startService, stopService, waitUntilReady, type Service } from './demo/service.js';

/** What the steps share: filled in as the demo goes. */
interface DemoContext {
  service?: Service;
  keep: boolean;
  /** The generated client, with the demo tenant's API key once the key step made it. */
  api?: FastadaptClient;
  familyId?: string;
  jobId?: string;
  metaModelId?: string;
}

/**
 * MAML on sinusoids as in the paper (a 1-40-40-1 network, 10 shots, one inner step, meta-batches of
 * 25), with 5000 rather than 70000 iterations so it finishes in about half a minute on two cores.
 */
function demoHyper(iterations: number) {
  return { iterations, metaBatchSize: 25, shots: 10, queryShots: 10, innerSteps: 1, innerLr: 0.01, metaLr: 0.001, evalEvery: Math.max(1, Math.round(iterations / 10)), checkpointEvery: Math.max(1, Math.round(iterations / 4)), seed: 1 };
}

function flag(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}

function requireService(context: DemoContext): Service {
  if (!context.service) throw new Error('the service is not running (the start step did not run)');
  return context.service;
}

/** Every API call goes through the client generated from the OpenAPI contract (clients/typescript). */
function requireApi(context: DemoContext): FastadaptClient {
  if (!context.api) throw new Error('no API client (the start step did not run)');
  return context.api;
}

const startStep: Step<DemoContext> = {
  title: 'Start fastadapt (--role all: HTTP api and worker in one process)',
  async run(context) {
    context.service = await startService('all');
    await waitUntilReady(context.service);
    context.api = createFastadaptClient({ baseUrl: context.service.baseUrl });
    return [`listening on ${context.service.baseUrl}`, `service log: ${context.service.logFile}`];
  },
};

const readinessStep: Step<DemoContext> = {
  title: 'Check readiness (GET /readyz)',
  async run(context) {
    const ready = await orThrow(requireApi(context).GET('/readyz'));
    const describe = (name: keyof typeof ready.checks): string => {
      const check = ready.checks[name];
      return `${name}: ${check.status} (${check.latencyMs} ms)${check.error ? `: ${check.error}` : ''}`;
    };
    return [
      `TensorFlow.js backend: ${ready.backend ?? 'none'}`,
      describe('postgres'),
      describe('redis'),
    ];
  },
};

const apiStep: Step<DemoContext> = {
  title: 'Read the API description (GET /openapi.json)',
  async run(context) {
    const service = requireService(context);
    // The contract itself is not one of its operations: plain fetch.
    const answer = await fetch(`${service.baseUrl}/openapi.json`, { signal: AbortSignal.timeout(10_000) });
    if (!answer.ok) throw new Error(`GET /openapi.json answered ${answer.status}`);
    const spec = (await answer.json()) as { openapi: string; info: { title: string; version: string }; paths: Record<string, unknown> };
    const docs = await fetch(`${service.baseUrl}/docs`, { signal: AbortSignal.timeout(10_000) });
    if (!docs.ok) throw new Error(`GET /docs answered ${docs.status}`);
    return [
      `${spec.info.title} ${spec.info.version}, OpenAPI ${spec.openapi}, ${Object.keys(spec.paths).length} paths`,
      `interactive docs: ${service.baseUrl}/docs${context.keep ? '' : ' (while the demo runs; `npm run demo -- --keep` keeps it up)'}`,
    ];
  },
};

const keyStep: Step<DemoContext> = {
  title: 'Create a tenant and its API key (stored hashed; shown once)',
  async run(context) {
    const db = createDb(loadConfig(process.env, []).databaseUrl);
    try {
      const { key, tenantId } = await createApiKey(db, 'demo', { name: 'npm run demo' });
      context.api = createFastadaptClient({ baseUrl: requireService(context).baseUrl, apiKey: key });
      return [`tenant ${tenantId}`, `key ${key.slice(0, 16)}... (send it as \`Authorization: Bearer <key>\`)`];
    } finally {
      await db.close();
    }
  },
};

const familyStep: Step<DemoContext> = {
  title: 'Define a task family: sinusoids y = A sin(x - phase) (POST /task-families)',
  async run(context) {
    const created = requireApi(context).POST('/task-families', {
      body: { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid', params: { amplitude: [0.1, 5], phase: [0, Math.PI] } } },
    });
    const family = await orThrow(created);
    context.familyId = family.id;
    return [`201 Created, Location ${(await created).response.headers.get('location')}`, 'amplitude in [0.1, 5], phase in [0, pi], x in [-5, 5]'];
  },
};

const trainStep: Step<DemoContext> = {
  title: 'Meta-train MAML on it (POST /meta-train), following GET /meta-train/:id/events',
  async run(context) {
    const api = requireApi(context);
    if (!context.familyId) throw new Error('no task family (the family step did not run)');
    const iterations = Number(flag('--iterations') ?? 5000);
    const created = api.POST('/meta-train', {
      body: { name: 'sine-maml', familyIds: [context.familyId], algorithm: 'maml', model: { hidden: [40, 40], activation: 'relu' }, hyper: demoHyper(iterations) },
    });
    const job = await orThrow(created);
    const { response } = await created;
    context.jobId = job.id;
    process.stdout.write(`      ${response.status} Accepted, Location ${response.headers.get('location')}\n`);

    const bar = new ProgressBar(iterations);
    let final: { status: string; iteration: number; error?: string; metaModelId?: string } | undefined;
    let events = 0;
    for await (const event of jobEvents(api, job.id)) {
      events++;
      if (event.event === 'progress') bar.update(event.data.iteration);
      if (event.event === 'metrics') {
        bar.note(`held-out MSE ${event.data.valLoss.toFixed(3)} after one inner step`);
        bar.update(event.data.iteration);
      }
      if (event.event === 'status') final = event.data;
    }
    bar.finish();
    if (final?.status !== 'succeeded' || !final.metaModelId) throw new Error(`the job ended ${String(final?.status)}${final?.error ? `: ${final.error}` : ''}`);
    context.metaModelId = final.metaModelId;
    return [`job ${job.id} succeeded after ${final.iteration} iterations (${events} events streamed)`];
  },
};

const modelStep: Step<DemoContext> = {
  title: 'Show the meta-model it produced (GET /meta-models/sine-maml@latest)',
  async run(context) {
    const api = requireApi(context);
    if (!context.jobId) throw new Error('no job (the train step did not run)');
    const model = await orThrow(api.GET('/meta-models/{id}', { params: { path: { id: 'sine-maml@latest' } } }));
    if (model.id !== context.metaModelId) throw new Error(`sine-maml@latest is ${model.id}, not the model the job reported (${context.metaModelId})`);
    const curve = await orThrow(api.GET('/meta-train/{id}/metrics', { params: { path: { id: context.jobId } } }));
    return [
      `${model.name} version ${model.version} (${model.aliases.join(', ')}), id ${model.id}`,
      model.model.body === 'conv'
        ? `${model.algorithm}, conv body ${model.model.channels?.join('-')} on ${model.model.inputShape?.join('x')} (${model.model.activation})`
        : `${model.algorithm}, body 1-${model.model.hidden?.join('-')}-1 (${model.model.activation})`,
      `final held-out MSE after one inner step: ${model.metrics.valLoss?.toFixed(3)} (train ${model.metrics.trainLoss?.toFixed(3)})`,
      `learning curve: ${curve.items.map((m) => `${m.iteration}: ${m.valLoss.toFixed(2)}`).join(', ')}`,
    ];
  },
};

const adaptStep: Step<DemoContext> = {
  title: 'Adapt it to new sinusoids from 10 examples each (POST /tasks, POST /tasks/:id/adapt, GET /predict)',
  async run(context) {
    const outDir = join(import.meta.dirname, '..', 'demo-output');
    return adaptNewSines(requireApi(context), 'sine-maml@latest', outDir);
  },
};

const keepStep: Step<DemoContext> = {
  title: 'Keep the service running (Ctrl-C to stop it)',
  async run(context) {
    const service = requireService(context);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      service.child.once('exit', () => resolve());
    });
    return [];
  },
};

const stopStep: Step<DemoContext> = {
  title: 'Stop the service (SIGTERM, graceful shutdown)',
  async run(context) {
    const code = await stopService(requireService(context));
    context.service = undefined;
    return [`exited with code ${code}`];
  },
};

async function main(): Promise<void> {
  const context: DemoContext = { keep: process.argv.includes('--keep') };
  const steps = [startStep, readinessStep, apiStep, keyStep, familyStep, trainStep, modelStep, adaptStep, ...(context.keep ? [keepStep] : []), stopStep];
  process.stdout.write('fastadapt demo\n');
  try {
    await runSteps(steps, context);
    process.stdout.write('Demo finished.\n');
  } catch (error) {
    const message = errorMessage(error);
    const where = error instanceof StepError ? ` at step "${error.step}"` : '';
    process.stderr.write(`Demo failed${where}: ${message}\n`);
    // Never leave a service behind: stop it, and kill it if it does not stop.
    if (context.service) await stopService(context.service, 5_000).catch(() => undefined);
    process.exitCode = 1;
  }
}

await main();
