/**
 * The API process's side of adaptation: one subscription to `<prefix>:adapted` that settles the
 * requests waiting on an adaptation and drops the task's cached head when a newer version lands, the
 * predict cache itself, the decoded meta-models both adapt and predict read (immutable, so they
 * are never invalidated), and a task's whole network (what the predict cache prepares and export writes).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { MetaModelCache } from '../../db/meta-model-cache.js';
import { loadMetaModel } from '../../db/repositories/meta-models.js';
import { loadLatestHead } from '../../db/repositories/tasks.js';
import { AdaptedSubscriber } from '../../jobs/adapted.js';
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
    /** A task's whole network at its latest head version, read from the store (serving and export). */
    taskModel(tenantId: string, taskId: string): Promise<TaskModelLookup>;
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
  | { status: 'ready'; taskId: string; headVersion: number; metaModelId: string; spec: ModelSpec; params: ParamArrays };

async function adapted(app: FastifyInstance): Promise<void> {
  const { db, config } = app;
  const metaModels = new MetaModelCache();
  const metaModel = (id: string) => metaModels.get(id, (key) => loadMetaModel(db, key));

  const taskModel = async (tenantId: string, taskId: string): Promise<TaskModelLookup> => {
    const found = await loadLatestHead(db, tenantId, taskId);
    if (found.status !== 'ready') return found;
    const { head } = found;
    const model = await metaModel(head.metaModelId);
    if (!model) throw new Error(`task ${taskId} names meta-model ${head.metaModelId}, which does not exist`);
    return { status: 'ready', taskId, headVersion: head.headVersion, metaModelId: head.metaModelId, spec: model.spec, params: taskParams(model, head.adapted) };
  };
  const load = async (tenantId: string, taskId: string): Promise<HeadLookup> => {
    const found = await taskModel(tenantId, taskId);
    if (found.status !== 'ready') return found;
    return { status: 'ready', head: { tenantId, taskId, metaModelId: found.metaModelId, headVersion: found.headVersion, network: prepareNetwork(found.spec, found.params) } };
  };
  const predictCache = new PredictCache({ load, maxEntries: config.predictCacheSize, onLookup: countPredictCacheLookup });
  const waiters = new AdaptWaiters();

  // Never connected itself: the subscriber is duplicated from it (lazily connecting on SUBSCRIBE).
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

  app.decorate('adaptWaiters', waiters);
  app.decorate('predictCache', predictCache);
  app.decorate('metaModel', metaModel);
  app.decorate('taskModel', taskModel);
  app.addHook('onClose', async () => {
    waiters.cancelAll();
    await subscriber.close();
    base.disconnect();
  });
}

export default fp(adapted, { name: 'adapted', fastify: '5.x' });
