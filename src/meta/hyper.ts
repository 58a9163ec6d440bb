/**
 * Meta-training hyper-parameters, declared once: each field's kind, lower bound, default and meaning.
 * The engine's HyperParams type, its defaults (DEFAULT_HYPER) and checks (resolveHyper), and the
 * HTTP request schema with its documentation are all derived from this table.
 */

/** A service limit that bounds a field in requests (the names of config.limits' fields). */
export type HyperLimit = 'maxIterations' | 'maxSupportExamples' | 'maxInnerSteps';

/** How one numeric hyper-parameter is declared. */
export interface NumericHyperField {
  /** `integer` (at least `min`) or `positive` (a finite number > 0). */
  type: 'integer' | 'positive';
  /** Least value of an integer field. */
  min?: number;
  /** The value when a request leaves it out; absent: the field is optional and unset by default. */
  default?: number;
  /** What an absent field without a default means (e.g. "the family's"). */
  otherwise?: string;
  /** Largest value a request may ask for: a number, or a configured service limit. */
  max: number | HyperLimit;
  /** False for the engine's own knobs that the HTTP API neither accepts nor shows. */
  api?: false;
  description: string;
}

/** How one on/off hyper-parameter is declared (always has a default). */
export interface SwitchHyperField {
  type: 'boolean';
  default: boolean;
  otherwise?: never;
  api?: false;
  description: string;
}

export type HyperField = NumericHyperField | SwitchHyperField;

export const HYPER_FIELDS = {
  iterations: { type: 'integer', min: 1, default: 1000, max: 'maxIterations', description: 'Outer-loop iterations (meta-batches)' },
  metaBatchSize: { type: 'integer', min: 1, default: 25, max: 1000, description: 'Tasks per meta-batch (25: the MAML paper, sinusoid)' },
  shots: { type: 'integer', min: 1, default: 10, max: 'maxSupportExamples', description: 'Support examples per task (regression) or per class (classification)' },
  queryShots: { type: 'integer', min: 1, default: 10, max: 'maxSupportExamples', description: 'Query examples per task or per class' },
  ways: { type: 'integer', min: 2, otherwise: "the family's", max: 1000, api: false, description: 'Classes per episode' },
  innerSteps: { type: 'integer', min: 1, default: 1, max: 'maxInnerSteps', description: 'Inner-loop gradient steps' },
  innerLr: { type: 'positive', default: 0.01, max: 1e6, description: 'Inner-loop step size (Meta-SGD: the initial per-parameter rates)' },
  metaLr: { type: 'positive', default: 0.001, max: 1e6, description: 'Adam step size of the outer loop' },
  evalEvery: { type: 'integer', min: 1, default: 100, max: 'maxIterations', description: 'Evaluate on held-out tasks every this many iterations (and after the last)' },
  checkpointEvery: { type: 'integer', min: 1, default: 100, max: 'maxIterations', description: 'Checkpoint every this many iterations (not after the last: the result follows)' },
  seed: { type: 'integer', min: 0, default: 0, max: 2 ** 31 - 1, description: 'Seeds initialisation and task sampling' },
  clipNorm: { type: 'positive', otherwise: 'no clipping', max: 1e6, description: 'Clip the meta-gradient to this global L2 norm' },
  zeroHead: {
    type: 'boolean',
    default: false,
    description:
      "MAML, FOMAML, Reptile, ANIL and Meta-SGD: every task's head starts at zero instead of at a meta-learned initialisation, and only the body (and Meta-SGD's rates) is meta-learned (the zeroing trick, Kao et al., 2022). " +
      "A learned head's initialisation is tied to the training classes; from zero, a classifier's first inner step makes each class's weights proportional to the mean support embedding of that class minus that of all classes: a prototype",
  },
  keepBest: {
    type: 'boolean',
    default: true,
    description:
      "Store the meta-parameters of the best validation evaluation (every evalEvery iterations and after the last) instead of the last iteration's: " +
      'the highest mean validation accuracy for classification (ties: the lower loss), the lowest mean validation loss for regression; the job and the meta-model name its bestIteration',
  },
  evalTasks: {
    type: 'integer',
    min: 1,
    // 100: the 95% interval of a mean validation accuracy is about +-2 points (digits, blobs; +-4 at
    // 32 tasks), and evaluating them every 100 iterations costs 1.3-2% of the training time (MLP and
    // Conv-4 bodies; measured with keepBest, issue 23).
    default: 100,
    max: 10_000,
    api: false,
    description: "Held-out 'val' tasks per evaluation: drawn once per job from its seed, so that every evaluation (and keepBest's choice) compares the same tasks",
  },
  tasks: {
    type: 'integer',
    min: 1,
    default: 1000,
    max: 100_000,
    description:
      "multitask only: training tasks a generator family draws for the fixed pool the body and the pool's heads train on (a dataset family pools its stored training tasks; digits its 24 training classes as one task)",
  },
} as const satisfies Record<string, HyperField>;

type Fields = typeof HYPER_FIELDS;
export type HyperName = keyof Fields;
type Defaulted = { [K in HyperName]: Fields[K] extends { default: number | boolean } ? K : never }[HyperName];
type ValueOf<F> = F extends { type: 'boolean' } ? boolean : number;

/** Meta-training hyper-parameters: every field with a default is always set (see HYPER_FIELDS). */
export type HyperParams = { [K in Defaulted]: ValueOf<Fields[K]> } & { [K in Exclude<HyperName, Defaulted>]?: ValueOf<Fields[K]> };

/** The fields the HTTP API accepts and shows. */
export type ApiHyperName = { [K in HyperName]: Fields[K] extends { api: false } ? never : K }[HyperName];
export type ApiHyperParams = Pick<HyperParams, ApiHyperName & Defaulted> & { [K in Exclude<ApiHyperName, Defaulted>]?: ValueOf<Fields[K]> };

export const HYPER_NAMES = Object.keys(HYPER_FIELDS) as HyperName[];
export const API_HYPER_NAMES = HYPER_NAMES.filter((name): name is ApiHyperName => (HYPER_FIELDS[name] as HyperField).api !== false);

export const DEFAULT_HYPER: Readonly<HyperParams> = Object.freeze(
  Object.fromEntries(HYPER_NAMES.flatMap((name) => {
    const field: HyperField = HYPER_FIELDS[name];
    return field.default === undefined ? [] : [[name, field.default]];
  })) as HyperParams,
);

/** A field's documentation: its meaning and its default. */
export function describeHyper(name: HyperName): string {
  const field: HyperField = HYPER_FIELDS[name];
  return `${field.description}. ${field.default === undefined ? `Default: ${field.otherwise}` : `Default ${field.default}`}`;
}

/** Only the fields the HTTP API shows, in declaration order (engine-only ones are left out). */
export function apiHyper(hyper: HyperParams): ApiHyperParams {
  return Object.fromEntries(API_HYPER_NAMES.flatMap((name) => (hyper[name] === undefined ? [] : [[name, hyper[name]]]))) as ApiHyperParams;
}
