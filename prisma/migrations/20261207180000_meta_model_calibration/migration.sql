-- Knowing when not to answer (issue 25 item 1): a meta-model keeps the calibration fitted on its
-- validation tasks at the end of meta-training (temperature, conformal quantiles by shots, novelty
-- standardisation and threshold, see src/meta/calibration.ts). Null for meta-models stored before it.

-- AlterTable
ALTER TABLE "meta_models" ADD COLUMN     "calibration" JSONB;
