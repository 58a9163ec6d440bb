/** Task families: where episodes come from. */

export { checkPackedTargets, dataset, DatasetFamily, type DatasetOptions, type PackedDataset, type StoredTask } from './dataset.js';
export { seededSplits, SPLIT_FRACTIONS } from './splits.js';
export { digitClassIds, digits, DIGIT_SPLITS, DIGITS_INPUT_DIM, DIGITS_INPUT_SHAPE, type DigitClass } from './digits.js';
export { checkShape, EpisodeShapeError } from './episode.js';
export { gaussianBlobs, type BlobsTask, type GaussianBlobsParams } from './gaussian-blobs.js';
export { GeneratedFamily, type FamilyOptions, type HeldOutParams, type RegressionTask } from './generated.js';
export { linear, type LinearParams } from './linear.js';
export { FamilyMixError, mix, type WeightedFamily } from './mix.js';
export { packEpisodes } from './pack.js';
export { samplePoolBatch, slicePoolBatch } from './pool.js';
export { FamilySpecError, MAX_PARAM_MAGNITUDE } from './params.js';
export { polynomial, type PolynomialParams } from './polynomial.js';
export { sinusoid, type SinusoidParams } from './sinusoid.js';
export { checkInputShape, createFamily, generatorInputShape, GENERATOR_TYPES, MAX_INPUT_DIM, type FamilySpec, type GeneratorType } from './spec.js';
