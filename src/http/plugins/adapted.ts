/**
 * The API process's side of adaptation: one subscription to `<prefix>:adapted` that settles the
 * requests waiting on an adaptation and drops the task's cached head when a newer version lands, one
 * to `<prefix>:task-changed` that drops it when a version is pinned or the task deleted, the
 * predict cache itself, the decoded meta-models both adapt and predict read (immutable, so they
 * are never invalidated), and a task's whole network (what the predict cache prepares and export writes).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { MetaModelCache } from '../../db/meta-model-cache.js';
import { loadMetaModel } from '../../db/repositories/meta-models.js';
import { loadAdaptTarget, loadLatestHead, type AdaptTarget } from '../../db/repositories/tasks.js';
import { Lru } from '../../util/lru.js';
import { withTimeout } from '../../util/timeout.js';
import { ENQUEUE_TIMEOUT_MS } from '../dependency-errors.js';
import { AdaptedSubscriber } from '../../jobs/adapted.js';
import { publishTaskChanged, TaskChangeSubscriber, type TaskChanged } from '../../jobs/task-changes.js';
import { taskParams, type MetaModel, type ModelSpec, type ParamArrays } from '../../meta/index.js';
import { countPredictCacheLookup } from '../../metrics/registry.js';
import { prepareNetwork } from '../../meta/predict-arrays.js';
import { AdaptWaiters } from '../adapt-waiters.js';
import { PredictCache, type HeadLookup } from '../predict-cache.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Requests waiting for their adaptation's outcome. */
    adaptWaiters: AdaptWaiters;
    /** Adapted heads ready to serve, invalidated across processes. */
    predictCache: PredictCache;
    /** A meta-model decoded for the engine (null: no such id). Callers scope the id to the tenant. */
    metaModel(id: string): Promise<MetaModel | null>;
    /** A task's whole network at its served head version (or `version`), read from the store (serving and export). */
    taskModel(tenantId: string, taskId: string, version?: number | null): Promise<TaskModelLookup>;
    /** A task's head at `version`, prepared for serving, read from the store (GET /predict?version=). */
    headAtVersion(tenantId: string, taskId: string, version: number): Promise<HeadLookup>;
    /**
     * Tells every API process (this one first, before it answers) that a task's served head was
     * pinned or the task deleted, and calls the listeners registered with {@link onTaskChanged}.
     */
    announceTaskChange(message: TaskChanged): Promise<void>;
    /** Calls `listener` for every task change, from any process. */
    onTaskChanged(listener: (message: TaskChanged) => void): void;
    /** A task's fixed facts (owner, shape, meta-model, label names, readapt policy), or null when it is not the tenant's. */
    taskFacts(tenantId: string, taskId: string): Promise<AdaptTarget | null>;
  }
}

/**
 * What a task's model is: no such task (for this tenant), a task never adapted, or its network at
 * the latest head version: the architecture and the task parameters (the meta-model's body and head
 * overridden by what adaptation changed, see taskParams).
 */
export type TaskModelLookup =
  | { status: 'missing' }
  | { status: 'not-adapted' }
  | { status: 'no-version' }
  | { status: 'ready'; taskId: string; headVersion: number; metaModelId: string; spec: ModelSpec; params: ParamArrays; labels: string[] };

/** Tasks whose facts this process remembers. */
const KNOWN_TASKS = 10_000;

async function adapted(app: FastifyInstance): Promise<void> {
  const { db, config } = app;
  const metaModels = new MetaModelCache();
  const metaModel = (id: string) => metaModels.get(id, (key) => loadMetaModel(db, key));

  const taskModel = async (tenantId: string, taskId: string, version: number | null = null): Promise<TaskModelLookup> => {
    const found = await loadLatestHead(db, tenantId, taskId, version);
    if (found.status !== 'ready') return found;
    const { head } = found;
    const model = await metaModel(head.metaModelId);
    if (!model) throw new Error(`task ${taskId} names meta-model ${head.metaModelId}, which does not exist`);
    return { status: 'ready', taskId, headVersion: head.headVersion, metaModelId: head.metaModelId, spec: model.spec, params: taskParams(model, head.adapted), labels: head.labels };
  };
  const headAtVersion = async (tenantId: string, taskId: string, version: number | null): Promise<HeadLookup> => {
    const found = await taskModel(tenantId, taskId, version);
    if (found.status !== 'ready') return found;
    return { status: 'ready', head: { tenantId, taskId, metaModelId: found.metaModelId, headVersion: found.headVersion, network: prepareNetwork(found.spec, found.params), labels: found.labels } };
  };
  const load = (tenantId: string, taskId: string) => headAtVersion(tenantId, taskId, null);
  const predictCache = new PredictCache({ load, maxEntries: config.predictCacheSize, onLookup: countPredictCacheLookup });
  const waiters = new AdaptWaiters();

  // The subscribers are duplicated from it; it connects itself only to publish task changes.
  const base = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: null });
  const subscriber = await AdaptedSubscriber.start(base, config.queuePrefix, app.log as unknown as Logger, 'api-adapted');
  subscriber.on((message) => {
    // Invalidate first: a client answered by its waiter then predicts with the new version.
    if (message.status === 'succeeded' && message.headVersion !== null) predictCache.invalidate(message.taskId, message.headVersion);
    waiters.settle(message);
  });
  // Invalidations sent while the subscription was down are lost: drop every cached head. (A request
  // waiting on a lost outcome reads the row when its ADAPT_WAIT_MS runs out.)
  subscriber.onReconnect(() => predictCache.clear());

  // Adaptation and appends are latency-bound: a task's facts never change once created, so a task
  // used again costs no read for them. A deleted task's go at once, here and on every API process.
  const facts = new Lru<string, AdaptTarget>({ maxEntries: KNOWN_TASKS });
  const taskFacts = async (tenantId: string, taskId: string): Promise<AdaptTarget | null> => {
    const key = `${tenantId}/${taskId}`;
    const known = facts.get(key);
    if (known) return known;
    const target = await loadAdaptTarget(db, tenantId, taskId);
    if (target) facts.set(key, target);
    return target;
  };

  const changeListeners = new Set<(message: TaskChanged) => void>();
  const taskChanged = (message: TaskChanged) => {
    predictCache.forget(message.taskId);
    if (message.change === 'deleted') facts.delete(`${message.tenantId}/${message.taskId}`);
    for (const listener of changeListeners) listener(message);
  };
  const changes = await TaskChangeSubscriber.start(base, config.queuePrefix, app.log as unknown as Logger, 'api-task-changed');
  changes.on(taskChanged);
  changes.onReconnect(() => {
    predictCache.clear();
    facts.clear();
  });
  const announceTaskChange = async (message: TaskChanged) => {
    // This process first, so the answer that follows already holds here; then every other one.
    taskChanged(message);
    // The row already changed: with Redis away the others learn it when their cached heads expire
    // (PREDICT_CACHE max age) or their subscriptions come back, so the request is not held for it.
    await withTimeout(publishTaskChanged(base, config.queuePrefix, message), ENQUEUE_TIMEOUT_MS).catch((err: unknown) => {
      app.log.warn({ err, ...message }, 'could not announce a task change to the other API processes');
    });
  };

  app.decorate('adaptWaiters', waiters);
  app.decorate('predictCache', predictCache);
  app.decorate('metaModel', metaModel);
  app.decorate('taskModel', taskModel);
  app.decorate('headAtVersion', headAtVersion);
  app.decorate('taskFacts', taskFacts);
  app.decorate('announceTaskChange', announceTaskChange);
  app.decorate('onTaskChanged', (listener: (message: TaskChanged) => void) => void changeListeners.add(listener));
  app.addHook('onClose', async () => {
    waiters.cancelAll();
    await subscriber.close();
    await changes.close();
    base.disconnect();
  });
}

export default fp(adapted, { name: 'adapted', fastify: '5.x' });
