/**
 * Per-route request logging: ordinary routes log "incoming request" and "request completed"; routes
 * marked `requestLog: 'exceptions'` log only failures (5xx, errors) and slow requests.
 */
import Fastify from 'fastify';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RequestLogging, SLOW_REQUEST_MS } from '../../../src/http/request-logging.js';

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  responseTime?: number;
}

async function appWithLog() {
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (text: string) => void lines.push(JSON.parse(text) as Line) });
  const app = Fastify({ loggerInstance: logger, logController: new RequestLogging() });
  let clock = 0;
  app.get('/plain', async () => ({ ok: true }));
  app.get('/hot', { config: { requestLog: 'exceptions' } }, async () => ({ ok: true }));
  app.get('/hot-fails', { config: { requestLog: 'exceptions' } }, async () => {
    throw new Error('boom');
  });
  app.get('/hot-slow', { config: { requestLog: 'exceptions' } }, async () => {
    await new Promise((resolve) => setTimeout(resolve, clock));
    return { ok: true };
  });
  await app.ready();
  return { app, lines, setDelay: (ms: number) => (clock = ms) };
}

describe('RequestLogging', () => {
  it('logs both lines for ordinary routes and none for a fast success on an exceptions route', async () => {
    const { app, lines } = await appWithLog();
    expect((await app.inject({ method: 'GET', url: '/plain' })).statusCode).toBe(200);
    expect(lines.map((l) => l.msg)).toEqual(['incoming request', 'request completed']);
    lines.length = 0;
    for (let i = 0; i < 5; i++) expect((await app.inject({ method: 'GET', url: '/hot' })).statusCode).toBe(200);
    expect(lines).toEqual([]);
    // Unmatched routes keep the ordinary lines.
    expect((await app.inject({ method: 'GET', url: '/nowhere' })).statusCode).toBe(404);
    expect(lines.map((l) => l.msg)).toContain('incoming request');
    await app.close();
  });

  it('still logs a 5xx on an exceptions route, at error level, with its request id', async () => {
    const { app, lines } = await appWithLog();
    const response = await app.inject({ method: 'GET', url: '/hot-fails' });
    expect(response.statusCode).toBe(500);
    const failures = lines.filter((l) => l.level >= 50);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((l) => typeof l.reqId === 'string')).toBe(true);
    expect(lines.map((l) => l.msg)).not.toContain('incoming request');
    await app.close();
  });

  it('logs a slow success on an exceptions route as a warning with its response time', async () => {
    const { app, lines, setDelay } = await appWithLog();
    setDelay(SLOW_REQUEST_MS + 50);
    expect((await app.inject({ method: 'GET', url: '/hot-slow' })).statusCode).toBe(200);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, msg: 'slow request completed' });
    expect(lines[0].responseTime).toBeGreaterThan(SLOW_REQUEST_MS);
    await app.close();
  });
});
