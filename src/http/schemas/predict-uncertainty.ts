/** Predict's optional `coverage` and `novelty` (issue 25): the request fields and what the answer gains. */
import { Type } from 'typebox';
import { COVERAGE_LEVELS } from '../../meta/index.js';

const [LOWEST, HIGHEST] = [COVERAGE_LEVELS[0], COVERAGE_LEVELS[COVERAGE_LEVELS.length - 1]];

/** Request fields, the same in GET /predict's query and POST /tasks/:id/predict's body. */
export const UncertaintyFields = {
  coverage: Type.Optional(Type.Number({
    minimum: LOWEST,
    maximum: HIGHEST,
    description: `Nominal coverage (${LOWEST} to ${HIGHEST}; rounded up to a hundredth): adds \`intervals\` (regression) or \`sets\` (classification), split conformal on the meta-model's validation tasks`,
    examples: [0.9],
  })),
  novelty: Type.Optional(Type.Boolean({ examples: [true], description: 'Adds `novelty` (standardised distance of each input to the support set in the body\'s embedding) and `abstain` (novelty above the meta-model\'s threshold)' })),
};

/** Answer fields, present only when the request asked for them. */
export const UncertaintyAnswerFields = {
  intervals: Type.Optional(Type.Array(Type.Array(Type.Number(), { minItems: 2, maxItems: 2 }), { description: 'Regression with `coverage`: [lo, hi] per input' })),
  sets: Type.Optional(Type.Array(Type.Array(Type.Union([Type.Integer({ minimum: 0 }), Type.String()])), { description: 'Classification with `coverage`: the labels of each input\'s prediction set (always holding the predicted label): class names for a task with `labels`, indices otherwise' })),
  novelty: Type.Optional(Type.Array(Type.Number(), { description: 'With `novelty`: per input, its distance to the support set standardised on validation tasks (0: typical of a task\'s own inputs)' })),
  abstain: Type.Optional(Type.Array(Type.Boolean(), { description: 'With `novelty`: per input, whether its novelty passes the meta-model\'s threshold (about 5% of a task\'s own inputs do)' })),
};
