/** Configuration: defaults, the --role override, and errors that name each bad variable. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

function problemsOf(env: Record<string, string>, argv: string[] = []): readonly string[] {
  try {
    loadConfig(env, argv);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({}, []);
    expect(config).toMatchObject({
      databaseUrl: 'postgresql://postgres@127.0.0.1:5432/fastadapt',
      redisUrl: 'redis://127.0.0.1:6379',
      host: '0.0.0.0',
      port: 3000,
      role: 'all',
      workerConcurrency: 1,
      tfjsBackend: 'auto',
      ortThreads: 1,
      logLevel: 'info',
      queuePrefix: 'fastadapt',
      limits: { maxBodyBytes: 1024 * 1024 },
    });
  });

  it('reads and types the environment', () => {
    const config = loadConfig({ PORT: '8080', WORKER_CONCURRENCY: ' 4 ', TFJS_BACKEND: 'wasm', FASTADAPT_ROLE: 'worker', MAX_INNER_STEPS: '20' }, []);
    expect(config.port).toBe(8080);
    expect(config.workerConcurrency).toBe(4);
    expect(config.tfjsBackend).toBe('wasm');
    expect(config.role).toBe('worker');
    expect(config.limits.maxInnerSteps).toBe(20);
  });

  it('lets --role override FASTADAPT_ROLE, in both spellings', () => {
    expect(loadConfig({ FASTADAPT_ROLE: 'worker' }, ['--role', 'api']).role).toBe('api');
    expect(loadConfig({}, ['--role=worker']).role).toBe('worker');
  });

  it('is frozen, limits included', () => {
    const config = loadConfig({}, []);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.limits)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('names a malformed value and what it should be', () => {
    expect(problemsOf({ PORT: 'abc' })).toEqual(['PORT must be an integer 1-65535, got "abc"']);
    expect(problemsOf({ PORT: '70000' })).toEqual(['PORT must be an integer 1-65535, got "70000"']);
    expect(problemsOf({ WORKER_CONCURRENCY: '1.5' })).toEqual(['WORKER_CONCURRENCY must be an integer 1-64, got "1.5"']);
    expect(problemsOf({ TFJS_BACKEND: 'cuda' })).toEqual(['TFJS_BACKEND must be one of auto|tensorflow-gpu|tensorflow|wasm|cpu, got "cuda"']);
    expect(problemsOf({ ORT_THREADS: '0' })).toEqual(['ORT_THREADS must be an integer 1-64, got "0"']);
    expect(problemsOf({}, ['--role', 'both'])).toEqual(['--role must be one of api|worker|all, got "both"']);
    expect(problemsOf({}, ['--rol', 'api'])[0]).toMatch(/unknown argument "--rol"/);
  });

  it('names a bad URL without echoing it (it may hold a password)', () => {
    const [problem] = problemsOf({ DATABASE_URL: 'mysql://root:hunter2@db/x' });
    expect(problem).toMatch(/^DATABASE_URL must be a URL starting with postgresql:\/\/ or postgres:\/\//);
    expect(problem).not.toContain('hunter2');
    expect(problemsOf({ REDIS_URL: 'not a url' })[0]).toMatch(/^REDIS_URL must be a URL/);
  });

  it('reports every problem at once', () => {
    const error = (() => {
      try {
        loadConfig({ PORT: '-1', LOG_LEVEL: 'loud', MAX_BODY_BYTES: 'lots', QUEUE_PREFIX: 'a b' }, []);
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.problems.map((p) => p.split(' ')[0])).toEqual(['PORT', 'LOG_LEVEL', 'MAX_BODY_BYTES', 'QUEUE_PREFIX']);
    expect(error?.message).toContain('PORT must be an integer 1-65535, got "-1"');
  });
});
