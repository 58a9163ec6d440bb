-- Uploaded dataset families (issue 15): rows arrive in parts as float32 chunks per task or class,
-- and a family is usable only once committed (status ready). Existing families are all ready.
-- CreateEnum
CREATE TYPE "family_status" AS ENUM ('uploading', 'ready');

-- AlterTable
ALTER TABLE "task_families" ADD COLUMN     "row_count" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "status" "family_status" NOT NULL DEFAULT 'ready',
ADD COLUMN     "uploaded" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "dataset_chunks" (
    "family_id" TEXT NOT NULL,
    "part" INTEGER NOT NULL,
    "seq" INTEGER NOT NULL,
    "group_key" TEXT NOT NULL,
    "split" TEXT,
    "examples" INTEGER NOT NULL,
    "x" BYTEA NOT NULL,
    "y" BYTEA NOT NULL,

    CONSTRAINT "dataset_chunks_pkey" PRIMARY KEY ("family_id","part","seq")
);

-- CreateIndex
CREATE INDEX "dataset_chunks_family_id_group_key_idx" ON "dataset_chunks"("family_id", "group_key");

-- AddForeignKey
ALTER TABLE "dataset_chunks" ADD CONSTRAINT "dataset_chunks_family_id_fkey" FOREIGN KEY ("family_id") REFERENCES "task_families"("id") ON DELETE CASCADE ON UPDATE CASCADE;
