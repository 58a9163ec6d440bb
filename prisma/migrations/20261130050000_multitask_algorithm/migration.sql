-- The multitask algorithm (hard parameter sharing, issue 13 item 2).
ALTER TYPE "algorithm" ADD VALUE 'multitask';
