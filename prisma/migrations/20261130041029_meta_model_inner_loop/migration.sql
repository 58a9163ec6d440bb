-- A meta-model carries the inner-loop settings it was meta-trained with (adaptation's defaults),
-- instead of adaptation reading them back from its job's hyper-parameters.
ALTER TABLE "meta_models" ADD COLUMN     "inner_lr" DOUBLE PRECISION,
ADD COLUMN     "inner_steps" INTEGER;

-- Existing meta-models: the job's hyper-parameters as stored (after defaults, so both keys are there;
-- the engine's defaults, 1 step of 0.01, cover a row written before defaults were stored).
UPDATE "meta_models" AS m
SET "inner_steps" = COALESCE((j."hyper" ->> 'innerSteps')::INTEGER, 1),
    "inner_lr" = COALESCE((j."hyper" ->> 'innerLr')::DOUBLE PRECISION, 0.01)
FROM "meta_train_jobs" AS j
WHERE j."id" = m."job_id";

ALTER TABLE "meta_models" ALTER COLUMN "inner_lr" SET NOT NULL,
ALTER COLUMN "inner_steps" SET NOT NULL;
