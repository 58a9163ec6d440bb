-- Task families say when their inputs are images ([height, width, channels]), for conv bodies.
-- AlterTable
ALTER TABLE "task_families" ADD COLUMN     "input_shape" INTEGER[] DEFAULT ARRAY[]::INTEGER[];

-- Families of the digits generator made before this column hold 14x14 grey images.
UPDATE "task_families" SET "input_shape" = ARRAY[14, 14, 1] WHERE "generator"->>'type' = 'digits';
