/**
 * `npm run demo`: a guided tour of a running fastadapt, end to end on the real Postgres and Redis
 * that scripts/setup.mjs made sure are up.
 *
 * Today it starts the service (api and worker in one process), waits until it is ready, shows what it
 * runs on and where its docs are, and shuts it down the way an orchestrator would. Each step is one
 * function in STEPS; the meta-train -> adapt -> predict steps slot in between start and stop.
 *
 * Flags: `--keep` leaves the service running (Ctrl-C stops it) to explore /docs by hand.
 */
import { runSteps, StepError, type Step } from './demo/progress.js';
import { startService, stopService, waitUntilReady, type Service } from './demo/service.js';

/** What the steps share: filled in as the demo goes. */
interface DemoContext {
  service?: Service;
  keep: boolean;
}

interface Check {
  status: 'up' | 'down';
  latencyMs: number;
  error?: string;
}

interface Readiness {
  status: string;
  backend: string | null;
  checks: Record<string, Check>;
}

function requireService(context: DemoContext): Service {
  if (!context.service) throw new Error('the service is not running (the start step did not run)');
  return context.service;
}

async function getJson<T>(service: Service, path: string): Promise<T> {
  const response = await fetch(`${service.baseUrl}${path}`, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`GET ${path} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

const startStep: Step<DemoContext> = {
  title: 'Start fastadapt (--role all: HTTP api and worker in one process)',
  async run(context) {
    context.service = await startService('all');
    await waitUntilReady(context.service);
    return [`listening on ${context.service.baseUrl}`, `service log: ${context.service.logFile}`];
  },
};

const readinessStep: Step<DemoContext> = {
  title: 'Check readiness (GET /readyz)',
  async run(context) {
    const ready = await getJson<Readiness>(requireService(context), '/readyz');
    const describe = (name: string): string => {
      const check = ready.checks[name];
      if (!check) return `${name}: not reported`;
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
    const spec = await getJson<{ openapi: string; info: { title: string; version: string }; paths: Record<string, unknown> }>(
      service,
      '/openapi.json',
    );
    const docs = await fetch(`${service.baseUrl}/docs`, { signal: AbortSignal.timeout(10_000) });
    if (!docs.ok) throw new Error(`GET /docs answered ${docs.status}`);
    return [
      `${spec.info.title} ${spec.info.version}, OpenAPI ${spec.openapi}, ${Object.keys(spec.paths).length} paths`,
      `interactive docs: ${service.baseUrl}/docs${context.keep ? '' : ' (while the demo runs; `npm run demo -- --keep` keeps it up)'}`,
    ];
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
  const steps = [startStep, readinessStep, apiStep, ...(context.keep ? [keepStep] : []), stopStep];
  process.stdout.write('fastadapt demo\n');
  try {
    await runSteps(steps, context);
    process.stdout.write('Demo finished.\n');
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const where = error instanceof StepError ? ` at step "${error.step}"` : '';
    process.stderr.write(`Demo failed${where}: ${message}\n`);
    // Never leave a service behind: stop it, and kill it if it does not stop.
    if (context.service) await stopService(context.service, 5_000).catch(() => undefined);
    process.exitCode = 1;
  }
}

await main();
