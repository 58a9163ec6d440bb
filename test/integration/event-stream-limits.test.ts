/**
 * A flood of `GET /meta-train/:id/events` streams: every stream of the API process is read over one
 * shared Redis connection, so Redis's client count does not grow with them; a tenant past
 * MAX_EVENT_STREAMS_PER_TENANT gets 429 problem+json until one of its streams closes (a client that
 * drops frees its place); another tenant is served as before. Also: events still reach every one
 * of many watchers of one job, each from its own Last-Event-ID.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishJobEvent } from '../../src/jobs/events.js';
import { newTenant, QUICK, SINE, startApi, type TestApi } from './support/api-app.js';

const CAP = 200;
const JOBS = 4;

let api: TestApi;
let baseUrl: string;

/** An open stream: its status code, and a way to drop it. */
interface Stream {
  status: number;
  body: string;
  request: ClientRequest;
  response: IncomingMessage;
}

/** Opens a stream and resolves once its head arrived (for a 200, once its first frame did too). */
function openStream(path: string, headers: Record<string, string>, extra: Record<string, string> = {}): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, baseUrl);
    const request = httpRequest(url, { headers: { ...headers, ...extra, accept: 'text/event-stream' }, agent: false }, (response) => {
      const stream: Stream = { status: response.statusCode ?? 0, body: '', request, response };
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        const first = stream.body === '';
        stream.body += chunk;
        if (first) resolve(stream);
      });
      response.on('end', () => resolve(stream));
    });
    request.on('error', reject);
    request.end();
  });
}

async function connectedClients(): Promise<number> {
  const info = await api.redis.info('clients');
  return Number(/connected_clients:(\d+)/.exec(info)![1]);
}

async function startJob(headers: Record<string, string>, familyId: string): Promise<string> {
  const response = await api.app.inject({ method: 'POST', url: '/meta-train', headers, payload: { familyIds: [familyId], algorithm: 'maml', model: { hidden: [8] }, hyper: QUICK } });
  expect(response.statusCode, response.body).toBe(202);
  return (response.json() as { id: string }).id;
}

let flooder: Awaited<ReturnType<typeof newTenant>>;
let other: Awaited<ReturnType<typeof newTenant>>;
const jobIds: string[] = [];
let otherJobId: string;
const streams: Stream[] = [];

beforeAll(async () => {
  // No worker runs on this prefix: the jobs stay queued, so their streams stay open.
  api = await startApi('event-limits', { MAX_EVENT_STREAMS_PER_TENANT: String(CAP), RATE_LIMIT_MAX: '0' });
  baseUrl = await api.app.listen({ host: '127.0.0.1', port: 0 });
  flooder = await newTenant(api.db);
  other = await newTenant(api.db);
  for (const tenant of [flooder, other]) {
    const familyId = ((await api.app.inject({ method: 'POST', url: '/task-families', headers: tenant.headers, payload: SINE })).json() as { id: string }).id;
    if (tenant === flooder) for (let i = 0; i < JOBS; i++) jobIds.push(await startJob(tenant.headers, familyId));
    else otherJobId = await startJob(tenant.headers, familyId);
  }
});

afterAll(async () => {
  for (const stream of streams) stream.request.destroy();
  await api?.close();
});

describe('a flood of event streams from one tenant', () => {
  it("is served over one Redis connection, stops at the tenant's cap with 429, and leaves another tenant alone", async () => {
    const before = await connectedClients();
    const opened = await Promise.all(Array.from({ length: CAP }, (_, i) => openStream(`/meta-train/${jobIds[i % JOBS]}/events`, flooder.headers)));
    streams.push(...opened);
    expect(opened.map((s) => s.status)).toEqual(Array(CAP).fill(200));
    for (const s of opened) expect(s.body).toMatch(/^event: status\ndata: \{"status":"queued"/);
    const during = await connectedClients();
    // Other work may share this Redis, so allow some drift; one connection per stream would add CAP.
    expect(during - before).toBeLessThan(CAP / 4);
    expect(await api.redis.zcard(`${api.prefix}:event-streams:${flooder.tenantId}`)).toBe(CAP);

    const refused = await api.app.inject({ method: 'GET', url: `/meta-train/${jobIds[0]}/events`, headers: flooder.headers });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.json()).toMatchObject({ status: 429, limit: CAP, open: CAP });

    // Another tenant: its stream opens and its ordinary requests answer as usual.
    const theirs = await openStream(`/meta-train/${otherJobId}/events`, other.headers);
    streams.push(theirs);
    expect(theirs.status).toBe(200);
    expect((await api.app.inject({ method: 'GET', url: `/meta-train/${otherJobId}`, headers: other.headers })).statusCode).toBe(200);
  });

  it('frees a place when a client drops its stream', async () => {
    const dropped = streams.splice(0, 5);
    for (const s of dropped) s.request.destroy();
    const key = `${api.prefix}:event-streams:${flooder.tenantId}`;
    await expect.poll(() => api.redis.zcard(key)).toBe(CAP - 5);
    const again = await openStream(`/meta-train/${jobIds[0]}/events`, flooder.headers);
    streams.push(again);
    expect(again.status).toBe(200);
  });

  it("delivers a new event to every watcher of a job, each after its own Last-Event-ID", async () => {
    const jobId = jobIds[1];
    const first = await publishJobEvent(api.redis, api.prefix, jobId, 'progress', { iteration: 1, iterations: 40 });
    // A watcher that resumes after `first` must not see it again; the flood's watchers of this job
    // see it once. (Dropping one stream makes room for it under the cap.)
    const places = `${api.prefix}:event-streams:${flooder.tenantId}`;
    const held = await api.redis.zcard(places);
    streams.splice(0, 1)[0].request.destroy();
    await expect.poll(() => api.redis.zcard(places)).toBe(held - 1);
    const mine = await openStream(`/meta-train/${jobId}/events`, flooder.headers, { 'last-event-id': first });
    streams.push(mine);
    const second = await publishJobEvent(api.redis, api.prefix, jobId, 'progress', { iteration: 2, iterations: 40 });
    const watchers = streams.filter((s) => s.request.path === `/meta-train/${jobId}/events` && s.status === 200);
    expect(watchers.length).toBeGreaterThan(10);
    await expect.poll(() => watchers.every((s) => s.body.includes(`id: ${second}\n`)), { timeout: 5_000 }).toBe(true);
    expect(mine.body).not.toContain(`id: ${first}\n`);
    const others = watchers.filter((s) => s !== mine);
    for (const s of others) expect(s.body.split(`id: ${first}\n`)).toHaveLength(2);
  });
});
