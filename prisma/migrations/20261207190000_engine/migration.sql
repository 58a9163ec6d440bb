-- Every result names the engine that ran (issue 26): the job the engine its meta-training ran on
-- ('fused-wasm', 'onnxruntime' or 'tfjs-<backend>'), its meta-model the same. Null for rows from before.

-- AlterTable
ALTER TABLE "meta_models" ADD COLUMN     "engine" TEXT;

-- AlterTable
ALTER TABLE "meta_train_jobs" ADD COLUMN     "engine" TEXT;
