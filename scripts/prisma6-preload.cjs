// Preloaded into the Prisma 6 CLI by scripts/prisma-cli.mjs. Its WebAssembly schema engine arms a
// 10 s timer (the migration advisory-lock timeout) and never clears it, so every command would sit
// idle for 10 s after finishing. Unref'ing long timers lets the process exit when its work is done;
// while the engine still waits on the database, the open connection keeps the process alive.
'use strict';
const setTimeoutOriginal = globalThis.setTimeout;
globalThis.setTimeout = function setTimeoutUnrefLong(callback, ms, ...args) {
  const timer = setTimeoutOriginal(callback, ms, ...args);
  if (typeof ms === 'number' && ms >= 5000 && typeof timer?.unref === 'function') timer.unref();
  return timer;
};
