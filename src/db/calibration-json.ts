/**
 * A meta-model's calibration as stored (the `calibration` JSON column) and as the API shows it: one
 * TypeBox schema, which decodes the column (a row that does not match reads as uncalibrated rather
 * than reaching serving half-formed) and describes the response (src/http/schemas/meta-models.ts).
 */
import type { Static } from 'typebox';
import { Type } from 'typebox';
import { Compile } from 'typebox/compile';
import type { Calibration } from '../meta/index.js';

const Novelty = Type.Object({ mean: Type.Number(), std: Type.Number({ exclusiveMinimum: 0 }) });

const ShotsCalibrationSchema = Type.Object({
  shots: Type.Integer({ minimum: 1, description: 'Support examples (per class) of the heads this entry serves: the most calibrated shots not above a head\'s' }),
  score: Type.Union([Type.Literal('absolute'), Type.Literal('normalised'), Type.Literal('lac')], {
    description: "Nonconformity score: absolute residual, residual over the task's support-target standard deviation (plus scaleFloor), or 1 - p(true class) at the temperature",
  }),
  n: Type.Integer({ minimum: 0, description: 'Validation query examples behind the quantiles' }),
  temperature: Type.Number({ exclusiveMinimum: 0, description: 'Temperature of these shots\' probabilities (1 for regression)' }),
  scaleFloor: Type.Optional(Type.Number({ minimum: 0 })),
  quantiles: Type.Array(Type.Union([Type.Number(), Type.Null()]), { description: 'The conformal quantile at each of `levels` (null: too few scores, unbounded)' }),
  novelty: Novelty,
});

export const CalibrationSchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('regression'), Type.Literal('classification')]),
    temperature: Type.Number({ exclusiveMinimum: 0, description: "The temperature at the shots the meta-model was trained with (exports bake it into their probabilities)" }),
    levels: Type.Array(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }), { description: 'Coverage levels with stored quantiles; a request is rounded up to one' }),
    noveltyThreshold: Type.Number({ description: 'Standardised novelty above which a prediction abstains' }),
    tasks: Type.Integer({ minimum: 1, description: 'Validation tasks drawn per number of shots' }),
    queryShots: Type.Integer({ minimum: 1 }),
    byShots: Type.Array(ShotsCalibrationSchema, { minItems: 1 }),
  },
  { description: 'Fitted on validation tasks at the end of meta-training: temperature, split conformal quantiles by shots, novelty standardisation' },
);

export type CalibrationJson = Static<typeof CalibrationSchema>;

const checker = Compile(CalibrationSchema);

/** The stored column as a calibration; undefined for null or anything that is not one. */
export function decodeCalibration(json: unknown): Calibration | undefined {
  if (json === null || json === undefined || !checker.Check(json)) return undefined;
  const value = json as CalibrationJson;
  return value.byShots.every((c) => c.quantiles.length === value.levels.length) ? value : undefined;
}
