-- Meta-training keeps its best (issue 23 item 1): every evaluation records the 95% intervals of its
-- validation means, the job copies its best evaluation beside its latest, a checkpoint carries the
-- best so far with its meta-parameters, and a meta-model names the iteration it was kept from.

-- AlterTable
ALTER TABLE "checkpoints" ADD COLUMN     "best_metrics" JSONB,
ADD COLUMN     "best_params" BYTEA;

-- AlterTable
ALTER TABLE "job_metrics" ADD COLUMN     "val_accuracy_ci95" DOUBLE PRECISION,
ADD COLUMN     "val_loss_ci95" DOUBLE PRECISION;

-- AlterTable
ALTER TABLE "meta_models" ADD COLUMN     "best_iteration" INTEGER;

-- AlterTable
ALTER TABLE "meta_train_jobs" ADD COLUMN     "best_iteration" INTEGER,
ADD COLUMN     "best_metrics" JSONB;

-- Jobs created before hyper.keepBest existed asked for the meta-parameters of the last iteration
-- (their meta-models hold those): say so, so that a job still queued or running keeps that meaning.
UPDATE "meta_train_jobs" SET "hyper" = "hyper" || '{"keepBest": false}'::jsonb WHERE "hyper" -> 'keepBest' IS NULL;
