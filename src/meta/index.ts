/**
 * The engine's public API: meta-training, adaptation and prediction, plus the pieces the service and
 * the benchmark build on. No I/O: call initBackend() once before using it. On CPU backends the
 * numbers run in fused WebAssembly kernels, on a GPU in tfjs (see chooseEngine).
 */

export { activeBackend, assertGpuBackend, BACKEND_PREFERENCES, BackendUnavailableError, initBackend, runtimeAborted, tf, type BackendName, type BackendPreference } from './backend.js';
export { ALGORITHM_NAMES, ALGORITHMS, getAlgorithm, LR_PREFIX, type AlgorithmName, type InnerSettings, type MetaAlgorithm } from './algorithms/index.js';
export { Adam, type AdamOptions, type AdamState } from './adam.js';
export { chooseEngine, ENGINE_PREFERENCES, type EngineName, type EnginePreference } from './engine.js';
export { EVALUATION_BASELINES, evaluateMetaModel, evaluationBaselines, meanCi, SCRATCH_STEPS, type EvaluationBaseline, type EvaluationMethod, type EvaluationRow, type EvaluationSettings, type MeanCi } from './evaluation.js';
export { assembleCalibration, CALIBRATION_SHOTS, CALIBRATION_TASKS, calibrationSettingsFor, COVERAGE_LEVELS, calibrationForShots, fitCalibration, fitShots, fitShotsYielding, halfWidth, nearestDistances, quantileFor, standardNovelty, type Calibration, type CalibrationSettings, type NonconformityScore, type ShotsCalibration } from './calibration.js';
export { coverageMetrics, EVALUATION_COVERAGE, noveltyAuroc, type CalibrationMetrics } from './calibration-eval.js';
export { predictionSet, supportScale, temperatureScale } from './conformal.js';
export { DEFAULT_GUARD, GUARD_POLICIES, type GuardPolicy, type SupportLossTrace } from './guard.js';
export { adapt, adaptMany, MAX_ADAPT_STEPS, predict, taskParams, type AdaptOptions, type AdaptResult, type MetaModel, type Prediction } from './adapt.js';
export { initMetaParams, MetaLearner, metaStep, NonFiniteError, type Evaluation, type LearnerConfig, type MetaStepMode } from './learner.js';
export {
  ACTIVATIONS,
  DEFAULT_ACTIVATION,
  BODY_KINDS,
  DEFAULT_HIDDEN,
  embeddingDim,
  MAX_CONV_BLOCKS,
  modelConfigOf,
  modelShapes,
  modelSpec,
  splitBodyHead,
  storedModelConfig,
  type Activation,
  type BodyKind,
  type ModelConfig,
  type ModelSpec,
  type StoredModelConfig,
  type ParamArray,
  type ParamArrays,
} from './model.js';
export {
  API_HYPER_NAMES,
  apiHyper,
  DEFAULT_HYPER,
  describeHyper,
  HYPER_FIELDS,
  HYPER_NAMES,
  type ApiHyperName,
  type ApiHyperParams,
  type HyperField,
  type HyperLimit,
  type HyperName,
  type HyperParams,
} from './hyper.js';
export {
  metaTrain,
  resolveHyper,
  taskSource,
  TrainConfigError,
  TrainingAbortedError,
  type BestEvaluation,
  type Checkpoint,
  type TrainConfig,
  type TrainEvent,
  type TrainOptions,
} from './train.js';
export { improves, VALIDATION_METRICS, validationMetric, validationOf, type MetricsPoint, type Validation, type ValidationMetric } from './selection.js';
export { Rng } from './rng.js';
export { TASK_KINDS, type Episode, type EpisodeBatch, type EpisodeShape, type Examples, type Split, type TaskFamily, type TaskKind } from './types.js';
export { CodecError, checkParamsMatch, decodeParams, encodeParams } from './codec.js';
export {
  checkInputShape,
  checkPackedTargets,
  createFamily,
  FamilyMixError,
  FamilySpecError,
  generatorInputShape,
  MAX_PARAM_MAGNITUDE,
  GENERATOR_TYPES,
  mix,
  packEpisodes,
  seededSplits,
  type FamilySpec,
  type GeneratorType,
  type PackedDataset,
  type WeightedFamily,
} from './families/index.js';
