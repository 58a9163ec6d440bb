/**
 * Service configuration: read from the environment once, at start-up, validated and frozen.
 * Every problem is collected before failing so an operator fixes them all in one go.
 */
import { BACKEND_PREFERENCES, type BackendPreference } from './meta/backend.js';

/** Which parts of the service a process runs. */
export type Role = 'api' | 'worker' | 'all';
export const ROLES: readonly Role[] = ['api', 'worker', 'all'];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Upper bounds on client input, so a single request cannot exhaust memory or a worker. */
export interface Limits {
  /** MAX_BODY_BYTES: largest accepted request body. Default 1 MiB (1048576). */
  readonly maxBodyBytes: number;
  /** MAX_SUPPORT_EXAMPLES: examples in one support set posted to /tasks/:id/adapt. Default 1000. */
  readonly maxSupportExamples: number;
  /**
   * MAX_TASK_EXAMPLES: labelled examples one task stores (POST /tasks/:id/examples; the oldest are
   * evicted beyond it, keeping each class's newest few), and the most one append may carry. Default 1000.
   */
  readonly maxTaskExamples: number;
  /** MAX_DATASET_TASKS: stored tasks in one dataset task family. Default 1000. */
  readonly maxDatasetTasks: number;
  /** MAX_PART_BYTES: largest body of one uploaded part (PUT /task-families/:id/parts/:n). Default 64 MiB. */
  readonly maxPartBytes: number;
  /** MAX_DATASET_ROWS: rows in one uploaded family, all parts together. Default 1000000. */
  readonly maxDatasetRows: number;
  /** MAX_DATASET_BYTES: float32 bytes one uploaded family stores (rows x (inputDim + 1) x 4). Default 1 GiB. */
  readonly maxDatasetBytes: number;
  /** MAX_HIDDEN_UNITS: units in one hidden layer of a model. Default 1024. */
  readonly maxHiddenUnits: number;
  /** MAX_ITERATIONS: outer-loop iterations of one meta-training job. Default 100000. */
  readonly maxIterations: number;
  /** MAX_INNER_STEPS: inner-loop gradient steps, in meta-training and in adaptation. Default 100. */
  readonly maxInnerSteps: number;
  /** MAX_PREDICT_INPUTS: inputs in one prediction request (GET /predict `x`s, POST predict rows). Default 1000. */
  readonly maxPredictInputs: number;
  /**
   * MAX_CONCURRENT_JOBS_PER_TENANT: meta-training jobs one tenant may have queued or running at once;
   * POST /meta-train answers 429 beyond it. Default 10.
   */
  readonly maxConcurrentJobsPerTenant: number;
  /**
   * MAX_EVENT_STREAMS_PER_TENANT: `GET /meta-train/:id/events` streams one tenant may hold open at
   * once, over all API processes; 429 beyond it, until one closes. Default 20.
   */
  readonly maxEventStreamsPerTenant: number;
  /**
   * MAX_EVALUATION_TASKS: held-out tasks per number of shots in one evaluation
   * (POST /meta-models/:id/evaluations `tasks`). Default 1000.
   */
  readonly maxEvaluationTasks: number;
}

export interface Config {
  /** DATABASE_URL. Default postgresql://postgres@127.0.0.1:5432/fastadapt. */
  readonly databaseUrl: string;
  /** REDIS_URL. Default redis://127.0.0.1:6379. */
  readonly redisUrl: string;
  /** HOST the HTTP server binds. Default 0.0.0.0. */
  readonly host: string;
  /** PORT the HTTP server listens on. Default 3000. */
  readonly port: number;
  /** FASTADAPT_ROLE, overridden by `--role`. Default all. */
  readonly role: Role;
  /** WORKER_CONCURRENCY: meta-training jobs one worker process runs at once. Default 1. */
  readonly workerConcurrency: number;
  /**
   * ADAPT_CONCURRENCY: adaptations one worker process runs at once. Default 4: each is a few ms of
   * compute between Postgres round trips, so several in flight keep the CPU busy while others wait.
   */
  readonly adaptConcurrency: number;
  /** TFJS_BACKEND. Default auto (tensorflow-gpu > tensorflow > wasm > cpu). */
  readonly tfjsBackend: BackendPreference;
  /**
   * ORT_THREADS: intra-op threads of each ONNX Runtime session (the conv engine). Default 1: a worker
   * is one process per core. Checked here at start-up; the engine reads it itself (ortThreads).
   */
  readonly ortThreads: number;
  /** LOG_LEVEL (pino). Default info. */
  readonly logLevel: LogLevel;
  /** QUEUE_PREFIX: Redis key prefix of the BullMQ queues. Default fastadapt. */
  readonly queuePrefix: string;
  /** READY_TIMEOUT_MS: how long /readyz waits for each dependency. Default 1000. */
  readonly readyTimeoutMs: number;
  /**
   * SHUTDOWN_TIMEOUT_MS: after SIGTERM, how long running jobs get to finish or checkpoint before the
   * process gives up and exits 1. Default 25000 (inside Docker's and Kubernetes' usual 30 s grace).
   */
  readonly shutdownTimeoutMs: number;
  /**
   * LOCK_DURATION_MS: how long a worker's lock on a running job lasts without renewal (BullMQ renews
   * it every half of this while the process is alive). A killed worker's job is recoverable this long
   * after the kill. Default 30000.
   */
  readonly lockDurationMs: number;
  /** STALLED_INTERVAL_MS: how often workers look for running jobs whose lock expired. Default 15000. */
  readonly stalledIntervalMs: number;
  /**
   * MAX_STALLED_COUNT: how many times a job may be recovered from a dead worker before BullMQ fails it
   * (the reconciler still re-enqueues it while Postgres says it is unfinished). Default 10.
   */
  readonly maxStalledCount: number;
  /**
   * RECONCILE_INTERVAL_MS: how often a worker re-enqueues jobs Postgres says are queued or running but
   * Redis has lost (it also runs at worker start). Default 60000.
   */
  readonly reconcileIntervalMs: number;
  /**
   * STUDY_INTERVAL_MS: how often a worker's study scheduler looks at running studies (starts waiting
   * trials, decides finished rungs, judges the winner's evaluation). Default 2000.
   */
  readonly studyIntervalMs: number;
  /** PROGRESS_INTERVAL_MS: least time between two progress writes of a running job. Default 250. */
  readonly progressIntervalMs: number;
  /**
   * ADAPT_WAIT_MS: how long POST /tasks/:id/adapt waits for the worker before answering 202 with the
   * adaptation's Location instead of 200. Default 10000.
   */
  readonly adaptWaitMs: number;
  /**
   * READAPT_DELAY_MS: for a task with `readapt: auto`, how long after an append (or after the previous
   * adaptation started, when more examples arrived meanwhile) its stored examples are adapted on, so that a
   * burst of appends coalesces into a few adaptations. Default 40.
   */
  readonly readaptDelayMs: number;
  /**
   * IDEMPOTENCY_TTL_MS: how long an Idempotency-Key of POST /meta-train maps to the job it created;
   * after that the key may be used again for a new job. Default 86400000 (24 h).
   */
  readonly idempotencyTtlMs: number;
  /**
   * AUTH_CACHE_TTL_MS: how long an API process trusts a resolved API key without asking Postgres; a key
   * revoked elsewhere keeps working in other processes at most this long. 0 asks every time. Default 30000.
   */
  readonly authCacheTtlMs: number;
  /** PREDICT_CACHE_SIZE: adapted heads an API process keeps ready to serve (least recently used leave). Default 10000. */
  readonly predictCacheSize: number;
  /**
   * RATE_LIMIT_MAX: requests one API key may make per window (counted in Redis, so across API
   * processes); beyond it 429 with Retry-After. 0 turns rate limiting off. Default 600.
   */
  readonly rateLimitMax: number;
  /** RATE_LIMIT_WINDOW_MS: the rate-limit window. Default 60000 (so 600 requests a minute). */
  readonly rateLimitWindowMs: number;
  /**
   * ADMIN_API_KEY: opens the queue board at /admin/queues (HTTP Basic password, or a Bearer token) and
   * /metrics. At least 16 characters. Default unset: the board is not served.
   */
  readonly adminApiKey: string | null;
  /**
   * METRICS_API_KEY: a scrape-only Bearer token for /metrics (so Prometheus does not hold the admin
   * key). At least 16 characters. Default unset: with neither key set, /metrics answers loopback
   * clients only.
   */
  readonly metricsApiKey: string | null;
  /**
   * DATASET_CACHE_MIB: memory one process gives to uploaded families loaded for sampling (an LRU
   * across families; a family larger than this is loaded for each use instead of kept). Default 2048.
   */
  readonly datasetCacheMiB: number;
  /** WORKER_METRICS_INTERVAL_MS: how often a worker publishes its metrics to Redis for /metrics. Default 5000. */
  readonly workerMetricsIntervalMs: number;
  readonly limits: Limits;
}

/** Thrown by {@link loadConfig}; the message names every bad variable. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Reads variables, remembering each problem instead of stopping at the first. */
class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  private raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const parsed = /^[+-]?\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      this.problems.push(`${name} must be an integer ${min}-${max}, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return parsed;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[], value = this.raw(name)): T {
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      this.problems.push(`${name} must be one of ${allowed.join('|')}, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return value as T;
  }

  /** An optional credential; too short is refused, and the value is never echoed. */
  secret(name: string, minLength: number): string | null {
    const value = this.raw(name);
    if (value === undefined) return null;
    if (value.length < minLength) {
      this.problems.push(`${name} must be at least ${minLength} characters`);
      return null;
    }
    return value;
  }

  url(name: string, fallback: string, protocols: readonly string[]): string {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    let protocol: string | undefined;
    try {
      protocol = new URL(value).protocol;
    } catch {
      protocol = undefined;
    }
    if (protocol === undefined || !protocols.includes(protocol)) {
      // The URL may hold a password: name the variable and the expected form, not the value.
      this.problems.push(`${name} must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);
      return fallback;
    }
    return value;
  }
}

/** `--role api`, `--role=api`; any other argument is a mistake worth stopping for. */
function parseArgs(argv: readonly string[], problems: string[]): { role?: string } {
  const out: { role?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--role') {
      out.role = argv[++i];
      if (out.role === undefined) problems.push('--role needs a value: api|worker|all');
    } else if (arg.startsWith('--role=')) {
      out.role = arg.slice('--role='.length);
    } else {
      problems.push(`unknown argument ${JSON.stringify(arg)} (expected --role api|worker|all)`);
    }
  }
  return out;
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object') deepFreeze(inner as object);
  }
  return Object.freeze(value);
}

const MiB = 1024 * 1024;

/**
 * Builds the configuration from `env` and command-line `argv` (without node and script).
 * @throws {ConfigError} naming each missing or malformed variable.
 */
export function loadConfig(env: Env = process.env, argv: readonly string[] = process.argv.slice(2)): Config {
  const read = new Reader(env);
  const args = parseArgs(argv, read.problems);
  const envRole = read.oneOf<Role>('FASTADAPT_ROLE', 'all', ROLES);
  const config: Config = {
    databaseUrl: read.url('DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432/fastadapt', ['postgresql:', 'postgres:']),
    redisUrl: read.url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    host: read.string('HOST', '0.0.0.0'),
    port: read.int('PORT', 3000, 1, 65535),
    role: args.role === undefined ? envRole : read.oneOf<Role>('--role', envRole, ROLES, args.role),
    workerConcurrency: read.int('WORKER_CONCURRENCY', 1, 1, 64),
    adaptConcurrency: read.int('ADAPT_CONCURRENCY', 4, 1, 256),
    tfjsBackend: read.oneOf<BackendPreference>('TFJS_BACKEND', 'auto', BACKEND_PREFERENCES),
    ortThreads: read.int('ORT_THREADS', 1, 1, 64),
    logLevel: read.oneOf<LogLevel>('LOG_LEVEL', 'info', LOG_LEVELS),
    queuePrefix: read.string('QUEUE_PREFIX', 'fastadapt'),
    readyTimeoutMs: read.int('READY_TIMEOUT_MS', 1000, 50, 60_000),
    shutdownTimeoutMs: read.int('SHUTDOWN_TIMEOUT_MS', 25_000, 100, 3_600_000),
    lockDurationMs: read.int('LOCK_DURATION_MS', 30_000, 500, 3_600_000),
    stalledIntervalMs: read.int('STALLED_INTERVAL_MS', 15_000, 100, 3_600_000),
    maxStalledCount: read.int('MAX_STALLED_COUNT', 10, 1, 1_000),
    reconcileIntervalMs: read.int('RECONCILE_INTERVAL_MS', 60_000, 100, 86_400_000),
    studyIntervalMs: read.int('STUDY_INTERVAL_MS', 2_000, 50, 3_600_000),
    progressIntervalMs: read.int('PROGRESS_INTERVAL_MS', 250, 0, 60_000),
    adaptWaitMs: read.int('ADAPT_WAIT_MS', 10_000, 0, 600_000),
    readaptDelayMs: read.int('READAPT_DELAY_MS', 40, 0, 60_000),
    idempotencyTtlMs: read.int('IDEMPOTENCY_TTL_MS', 86_400_000, 1_000, 365 * 86_400_000),
    authCacheTtlMs: read.int('AUTH_CACHE_TTL_MS', 30_000, 0, 3_600_000),
    predictCacheSize: read.int('PREDICT_CACHE_SIZE', 10_000, 1, 10_000_000),
    adminApiKey: read.secret('ADMIN_API_KEY', 16),
    metricsApiKey: read.secret('METRICS_API_KEY', 16),
    datasetCacheMiB: read.int('DATASET_CACHE_MIB', 2048, 0, 1_048_576),
    workerMetricsIntervalMs: read.int('WORKER_METRICS_INTERVAL_MS', 5_000, 100, 3_600_000),
    rateLimitMax: read.int('RATE_LIMIT_MAX', 600, 0, 1_000_000_000),
    rateLimitWindowMs: read.int('RATE_LIMIT_WINDOW_MS', 60_000, 100, 86_400_000),
    limits: {
      maxBodyBytes: read.int('MAX_BODY_BYTES', MiB, 1024, 256 * MiB),
      maxSupportExamples: read.int('MAX_SUPPORT_EXAMPLES', 1000, 1, 1_000_000),
      maxTaskExamples: read.int('MAX_TASK_EXAMPLES', 1000, 1, 1_000_000),
      maxDatasetTasks: read.int('MAX_DATASET_TASKS', 1000, 1, 1_000_000),
      maxPartBytes: read.int('MAX_PART_BYTES', 64 * MiB, 1024, 1024 * MiB),
      maxDatasetRows: read.int('MAX_DATASET_ROWS', 1_000_000, 1, 100_000_000),
      maxDatasetBytes: read.int('MAX_DATASET_BYTES', 1024 * MiB, 1024, 2 ** 53 - 1),
      maxHiddenUnits: read.int('MAX_HIDDEN_UNITS', 1024, 1, 65_536),
      maxIterations: read.int('MAX_ITERATIONS', 100_000, 1, 100_000_000),
      maxInnerSteps: read.int('MAX_INNER_STEPS', 100, 1, 10_000),
      maxPredictInputs: read.int('MAX_PREDICT_INPUTS', 1000, 1, 1_000_000),
      maxConcurrentJobsPerTenant: read.int('MAX_CONCURRENT_JOBS_PER_TENANT', 10, 1, 1_000_000),
      maxEventStreamsPerTenant: read.int('MAX_EVENT_STREAMS_PER_TENANT', 20, 1, 1_000_000),
      maxEvaluationTasks: read.int('MAX_EVALUATION_TASKS', 1000, 1, 1_000_000),
    },
  };
  if (!/^[A-Za-z0-9_.-]+$/.test(config.queuePrefix)) {
    read.problems.push(`QUEUE_PREFIX must use only letters, digits, '_', '.', '-', got ${JSON.stringify(config.queuePrefix)}`);
  }
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return deepFreeze(config);
}
