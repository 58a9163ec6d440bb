# syntax=docker/dockerfile:1.7
#
# Targets (docker build --target NAME .):
#   runtime      CPU image for the api and the workers (tfjs-node, falls back to wasm); the default.
#   runtime-gpu  worker image on CUDA 11.8 + cuDNN 8 with tfjs-node-gpu (TFJS_BACKEND=tensorflow-gpu).
#   migrate      one-shot: applies prisma/migrations to DATABASE_URL, downloads nothing, exits.
#
# The service is compiled with tsc in the build stage and runs as plain `node dist/src/main.js`:
# the runtime images carry no TypeScript, tsx or esbuild, start faster, and never transpile at
# start-up; tsc also type-checks the image's code once more.

FROM node:20-bookworm-slim AS node-base
ENV npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
WORKDIR /app

# ---- deps: every dependency, and the generated Prisma client --------------------------------------
FROM node-base AS deps
COPY package.json package-lock.json ./
# Install scripts stay off: the two optional tfjs native bindings would each download a libtensorflow
# (the GPU one is several hundred MB) into every image; the native-* stages below fetch only the one
# each runtime needs. No other install script is required (@prisma/engines' would fetch an engine the
# project never uses).
RUN npm ci --ignore-scripts
COPY prisma ./prisma
COPY prisma.config.ts ./
COPY scripts/prisma-cli.mjs ./scripts/
# The same offline route as scripts/setup.mjs: Prisma 7's CLI wants a native schema engine even to
# generate, which never uses it, so the script points PRISMA_SCHEMA_ENGINE_BINARY at /bin/true
# instead of letting it download one. Output: src/generated/prisma (TypeScript, compiled below).
RUN node scripts/prisma-cli.mjs generate

# ---- build: TypeScript -> dist --------------------------------------------------------------------
FROM deps AS build
COPY tsconfig.json ./
COPY src ./src
COPY scripts/build-wasm.mjs ./scripts/
# The fused engine's kernels: AssemblyScript -> WebAssembly SIMD with the compiler in node_modules (no
# download). tsc copies no .wasm, so the module goes beside its loader in dist by hand.
RUN node scripts/build-wasm.mjs --force \
 && npx tsc --outDir dist \
 && cp src/meta/fused/kernels.wasm dist/src/meta/fused/kernels.wasm

# ---- prod-deps: production dependencies only ------------------------------------------------------
FROM node-base AS prod-deps
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# ---- native bindings: run only the install script of the tfjs binding each runtime uses -----------
# node-pre-gyp fetches a prebuilt addon and libtensorflow 2.9.1; the compilers are there for its
# build-from-source fallback. docker-prune.mjs then keeps only what the service loads, at the locked
# versions: the production dependencies plus this one binding (not the other, not the Prisma CLI
# that `npm ci --omit=dev` keeps as an optional peer of @prisma/client).
FROM prod-deps AS native-build-tools
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/docker-prune.mjs ./scripts/

FROM native-build-tools AS native-cpu
RUN npm rebuild @tensorflow/tfjs-node \
 && node scripts/docker-prune.mjs @tensorflow/tfjs-node

FROM native-build-tools AS native-gpu
RUN npm rebuild @tensorflow/tfjs-node-gpu \
 && node scripts/docker-prune.mjs @tensorflow/tfjs-node-gpu

# ---- migrate: apply prisma/migrations with the offline Prisma 6 CLI (wasm schema engine) ----------
FROM deps AS migrate
COPY prisma6.config.ts ./
COPY scripts/prisma6-preload.cjs ./scripts/
# The CLI keeps a Prisma 6 copy of the schema and its config loader's cache under node_modules/.cache:
# the only place the non-root user writes.
RUN mkdir -p node_modules/.cache && chown -R node:node node_modules/.cache
USER node
CMD ["node", "scripts/prisma-cli.mjs", "deploy"]

# ---- runtime-gpu: worker on an NVIDIA GPU ---------------------------------------------------------
# tfjs-node-gpu 4.22 loads libtensorflow 2.9.1, built against CUDA 11.2 and cuDNN 8.1: it dlopens
# libcudart.so.11.0, libcublas.so.11, libcudnn.so.8 and friends, which no CUDA 12 image has. CUDA 11.8
# keeps those sonames (minor-version compatible with 11.2) and ships cuDNN 8; the host driver must
# be >= 520 (or >= 450 with the cuda-compat layer).
FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04 AS runtime-gpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --create-home --shell /usr/sbin/nologin node
# The official Node 20 binary needs glibc >= 2.28; Ubuntu 22.04 has 2.35.
COPY --from=node-base /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    TFJS_BACKEND=tensorflow-gpu
COPY package.json ./
COPY --from=native-gpu /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
# This image runs workers (CMD below), which serve no HTTP; Docker's restart policy covers a worker
# whose process exits. Running it as `--role api` instead: add `--health-cmd` like the CPU runtime's.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/src/main.js"]
CMD ["--role", "worker"]

# ---- runtime: CPU image (api and workers); the last stage, so the default of `docker build .` -------
FROM node-base AS runtime
# tini is PID 1: it forwards SIGTERM to node (whose graceful shutdown closes the worker, Fastify,
# Redis and Postgres) and reaps zombies; node as PID 1 would ignore default-action signals.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
# package.json makes dist/**/*.js ES modules ("type": "module"). Files stay root-owned: read-only
# for the service user.
COPY package.json ./
COPY --from=native-cpu /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The dashboard (GET /) is plain static files, served from web/ next to dist/.
COPY web ./web
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/src/main.js"]
CMD ["--role", "api"]
