-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "task_kind" AS ENUM ('regression', 'classification');

-- CreateEnum
CREATE TYPE "algorithm" AS ENUM ('maml', 'fomaml', 'reptile', 'anil', 'metasgd', 'protonet');

-- CreateEnum
CREATE TYPE "job_status" AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

-- CreateEnum
CREATE TYPE "adaptation_status" AS ENUM ('queued', 'running', 'succeeded', 'failed');

-- CreateTable
CREATE TABLE "tenants" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tenants_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_keys" (
    "id" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "name" TEXT,
    "prefix" TEXT NOT NULL,
    "key_hash" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "task_families" (
    "id" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "kind" "task_kind" NOT NULL,
    "input_dim" INTEGER NOT NULL,
    "n_way" INTEGER,
    "generator" JSONB,
    "task_count" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "task_families_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "dataset_tasks" (
    "family_id" TEXT NOT NULL,
    "index" INTEGER NOT NULL,
    "examples" INTEGER NOT NULL,
    "x" BYTEA NOT NULL,
    "y" BYTEA NOT NULL,

    CONSTRAINT "dataset_tasks_pkey" PRIMARY KEY ("family_id","index")
);

-- CreateTable
CREATE TABLE "meta_train_jobs" (
    "id" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "status" "job_status" NOT NULL DEFAULT 'queued',
    "algorithm" "algorithm" NOT NULL,
    "family_ids" TEXT[],
    "model" JSONB NOT NULL,
    "hyper" JSONB NOT NULL,
    "iteration" INTEGER NOT NULL DEFAULT 0,
    "iterations" INTEGER NOT NULL,
    "last_metrics" JSONB,
    "error" TEXT,
    "idempotency_key" TEXT,
    "request_hash" TEXT,
    "cancel_requested_at" TIMESTAMPTZ(3),
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "meta_train_jobs_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "job_metrics" (
    "job_id" TEXT NOT NULL,
    "iteration" INTEGER NOT NULL,
    "train_loss" DOUBLE PRECISION NOT NULL,
    "val_loss" DOUBLE PRECISION NOT NULL,
    "val_accuracy" DOUBLE PRECISION,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "job_metrics_pkey" PRIMARY KEY ("job_id","iteration")
);

-- CreateTable
CREATE TABLE "checkpoints" (
    "id" TEXT NOT NULL,
    "job_id" TEXT NOT NULL,
    "iteration" INTEGER NOT NULL,
    "params" BYTEA NOT NULL,
    "optimizer_state" BYTEA NOT NULL,
    "rng_state" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "checkpoints_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "meta_models" (
    "id" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "job_id" TEXT NOT NULL,
    "algorithm" "algorithm" NOT NULL,
    "kind" "task_kind" NOT NULL,
    "input_dim" INTEGER NOT NULL,
    "n_way" INTEGER,
    "model" JSONB NOT NULL,
    "metrics" JSONB NOT NULL,
    "params" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "meta_models_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "meta_model_aliases" (
    "tenant_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "alias" TEXT NOT NULL,
    "meta_model_id" TEXT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "meta_model_aliases_pkey" PRIMARY KEY ("tenant_id","name","alias")
);

-- CreateTable
CREATE TABLE "tasks" (
    "id" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "meta_model_id" TEXT NOT NULL,
    "name" TEXT,
    "kind" "task_kind" NOT NULL,
    "input_dim" INTEGER NOT NULL,
    "n_way" INTEGER,
    "head_version" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tasks_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "adapted_heads" (
    "task_id" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "params" BYTEA NOT NULL,
    "support_loss_before" DOUBLE PRECISION NOT NULL,
    "support_loss_after" DOUBLE PRECISION NOT NULL,
    "steps" INTEGER NOT NULL,
    "inner_lr" DOUBLE PRECISION NOT NULL,
    "duration_ms" DOUBLE PRECISION NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "adapted_heads_pkey" PRIMARY KEY ("task_id","version")
);

-- CreateTable
CREATE TABLE "adaptations" (
    "id" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "task_id" TEXT NOT NULL,
    "status" "adaptation_status" NOT NULL DEFAULT 'queued',
    "steps" INTEGER NOT NULL,
    "inner_lr" DOUBLE PRECISION NOT NULL,
    "support_size" INTEGER NOT NULL,
    "support_x" BYTEA NOT NULL,
    "support_y" BYTEA NOT NULL,
    "head_version" INTEGER,
    "error" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),

    CONSTRAINT "adaptations_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_prefix_key" ON "api_keys"("prefix");

-- CreateIndex
CREATE INDEX "api_keys_tenant_id_idx" ON "api_keys"("tenant_id");

-- CreateIndex
CREATE INDEX "task_families_tenant_id_created_at_id_idx" ON "task_families"("tenant_id", "created_at", "id");

-- CreateIndex
CREATE INDEX "meta_train_jobs_tenant_id_status_created_at_id_idx" ON "meta_train_jobs"("tenant_id", "status", "created_at", "id");

-- CreateIndex
CREATE INDEX "meta_train_jobs_tenant_id_created_at_id_idx" ON "meta_train_jobs"("tenant_id", "created_at", "id");

-- CreateIndex
CREATE INDEX "meta_train_jobs_status_updated_at_idx" ON "meta_train_jobs"("status", "updated_at");

-- CreateIndex
CREATE UNIQUE INDEX "meta_train_jobs_tenant_id_idempotency_key_key" ON "meta_train_jobs"("tenant_id", "idempotency_key");

-- CreateIndex
CREATE UNIQUE INDEX "checkpoints_job_id_iteration_key" ON "checkpoints"("job_id", "iteration");

-- CreateIndex
CREATE UNIQUE INDEX "meta_models_job_id_key" ON "meta_models"("job_id");

-- CreateIndex
CREATE INDEX "meta_models_tenant_id_created_at_id_idx" ON "meta_models"("tenant_id", "created_at", "id");

-- CreateIndex
CREATE UNIQUE INDEX "meta_models_tenant_id_name_version_key" ON "meta_models"("tenant_id", "name", "version");

-- CreateIndex
CREATE UNIQUE INDEX "meta_models_id_tenant_id_name_key" ON "meta_models"("id", "tenant_id", "name");

-- CreateIndex
CREATE INDEX "meta_model_aliases_meta_model_id_idx" ON "meta_model_aliases"("meta_model_id");

-- CreateIndex
CREATE INDEX "tasks_tenant_id_created_at_id_idx" ON "tasks"("tenant_id", "created_at", "id");

-- CreateIndex
CREATE INDEX "tasks_meta_model_id_idx" ON "tasks"("meta_model_id");

-- CreateIndex
CREATE INDEX "adaptations_task_id_created_at_idx" ON "adaptations"("task_id", "created_at");

-- CreateIndex
CREATE INDEX "adaptations_status_created_at_idx" ON "adaptations"("status", "created_at");

-- AddForeignKey
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "task_families" ADD CONSTRAINT "task_families_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "dataset_tasks" ADD CONSTRAINT "dataset_tasks_family_id_fkey" FOREIGN KEY ("family_id") REFERENCES "task_families"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "meta_train_jobs" ADD CONSTRAINT "meta_train_jobs_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "job_metrics" ADD CONSTRAINT "job_metrics_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "meta_train_jobs"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "checkpoints" ADD CONSTRAINT "checkpoints_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "meta_train_jobs"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "meta_models" ADD CONSTRAINT "meta_models_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "meta_models" ADD CONSTRAINT "meta_models_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "meta_train_jobs"("id") ON DELETE NO ACTION ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "meta_model_aliases" ADD CONSTRAINT "meta_model_aliases_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "meta_model_aliases" ADD CONSTRAINT "meta_model_aliases_meta_model_id_tenant_id_name_fkey" FOREIGN KEY ("meta_model_id", "tenant_id", "name") REFERENCES "meta_models"("id", "tenant_id", "name") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_meta_model_id_fkey" FOREIGN KEY ("meta_model_id") REFERENCES "meta_models"("id") ON DELETE NO ACTION ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "adapted_heads" ADD CONSTRAINT "adapted_heads_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "tasks"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "adaptations" ADD CONSTRAINT "adaptations_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "adaptations" ADD CONSTRAINT "adaptations_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "tasks"("id") ON DELETE CASCADE ON UPDATE CASCADE;

