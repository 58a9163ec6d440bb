/**
 * The OpenAPI 3.1 document, generated from the route schemas (declared once), served as
 * GET /openapi.json and browsable at /docs. `npm run openapi` writes it to openapi/openapi.json and
 * regenerates the TypeScript client from it; a test fails when the two drift apart.
 */
import { readFileSync } from 'node:fs';
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import type { TSchema } from 'typebox';
import { Evaluation, EvaluationList, EvaluationRow } from '../schemas/evaluations.js';
import { Health, NotReady, Ready } from '../schemas/health.js';
import { MetaModel, MetaModelList } from '../schemas/meta-models.js';
import { Job, JobList, MetricsHistory } from '../schemas/meta-train.js';
import { AdaptResult, Adaptation } from '../schemas/adapt.js';
import { TfjsArtefact } from '../schemas/model-export.js';
import { Predictions } from '../schemas/predict.js';
import { Problem, ValidationIssue } from '../schemas/problem.js';
import { Task, TaskList } from '../schemas/tasks.js';
import { TaskFamily, TaskFamilyList } from '../schemas/task-families.js';
import { completeOperation } from './openapi-operation.js';
import { tidyDocument } from './openapi-document.js';

const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

/** Every tag an operation may use, in the order the docs show them. */
export const TAGS = [
  { name: 'task-families', description: 'What meta-training learns from: a built-in task generator (sinusoid, linear, polynomial, gaussian-blobs) or uploaded dataset tasks.' },
  { name: 'meta-train', description: 'Meta-training jobs: queued at once, run on the worker pool, followed by polling, by the metrics history or live over Server-Sent Events.' },
  { name: 'meta-models', description: 'The registry of learned meta-parameters: a version per finished job, counted per name, with movable aliases (`latest`, `production`).' },
  { name: 'evaluations', description: 'Does meta-learning help on your tasks, and from how many examples? A meta-model against baselines (unadapted, trained from scratch, multitask, raw inputs) on held-out tasks, with 95% confidence intervals.' },
  { name: 'studies', description: 'Which algorithm and inner loop suit your tasks? A study meta-trains candidate learners as ordinary jobs under successive halving on validation, evaluates the winner on the test split against every baseline, and moves an alias to it only when it beats them all beyond the intervals.' },
  { name: 'tasks', description: 'New tasks bound to a meta-model: adapt one from a few labelled examples (its support set) in milliseconds, then predict with its latest adapted head.' },
  { name: 'operations', description: 'Liveness and readiness probes (no key needed) and Prometheus metrics (an operator key).' },
];

/** Schemas that several operations share, published under these names in `components.schemas`. */
export const COMPONENTS: Record<string, TSchema> = {
  Problem,
  ValidationIssue,
  TaskFamily,
  TaskFamilyList,
  Job,
  JobList,
  MetricsHistory,
  MetaModel,
  MetaModelList,
  Evaluation,
  EvaluationList,
  EvaluationRow,
  Task,
  TaskList,
  AdaptResult,
  Adaptation,
  Predictions,
  TfjsArtefact,
  Health,
  Ready,
  NotReady,
};

const DESCRIPTION = `Meta-learning as a service: meta-train on task families, adapt to a new task from a few examples, serve predictions.

**Authentication.** Every operation except the probes needs \`Authorization: Bearer <api key>\`
(operators create keys with \`npm run apikey -- create --tenant <name>\`). Each resource belongs to the
tenant of the key that created it; another tenant's id answers 404, exactly as one that does not exist.

**Errors.** Every error is \`application/problem+json\` (RFC 9457). Invalid input answers 400 with
\`errors\`: one \`{ path, message, in }\` per bad field, \`path\` a JSON pointer into the body, query,
path or headers. 5xx answers carry no internals: quote the \`x-request-id\` response header.

**Conventions.** Ids are opaque strings, timestamps ISO-8601 UTC, lists are newest first and paged
with \`limit\` and \`cursor\` (the previous page's \`nextCursor\`).`;

async function openapi(app: FastifyInstance): Promise<void> {
  // Before any route is registered, so it sees every one of them (the hook is inherited by the
  // scopes registered after it).
  app.addHook('onRoute', completeOperation);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'fastadapt', description: DESCRIPTION, version },
      // Relative: the server that serves this document (set HOST and PORT where it listens).
      servers: [{ url: '/', description: 'This server' }],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer <key>`' },
          operatorKey: { type: 'http', scheme: 'bearer', description: 'An operator secret from the environment (METRICS_API_KEY or ADMIN_API_KEY), not a tenant\'s API key' },
        },
      },
      // Every route needs a tenant's key unless its schema says otherwise: `security: []` (the probes)
      // or `[{ operatorKey: [] }]` (/metrics).
      security: [{ bearerAuth: [] }],
      tags: TAGS,
    },
    transformObject: (document) => {
      if (!('openapiObject' in document)) throw new Error('expected an OpenAPI 3 document');
      return tidyDocument(document.openapiObject as Parameters<typeof tidyDocument>[0], COMPONENTS);
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

export default fp(openapi, { name: 'openapi', fastify: '5.x' });
