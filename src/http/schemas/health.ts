/** Liveness and readiness answers. */
import { Type, type Static } from 'typebox';

export const Health = Type.Object({ status: Type.Literal('ok') }, { examples: [{ status: 'ok' }] });

export const DependencyCheck = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  latencyMs: Type.Number({ description: 'Time the check took, in milliseconds' }),
  error: Type.Optional(Type.String({ description: 'Why the check failed' })),
});
export type DependencyCheck = Static<typeof DependencyCheck>;

const checks = {
  checks: Type.Object({ postgres: DependencyCheck, redis: DependencyCheck, tfjs: DependencyCheck }),
  backend: Type.Union([Type.String(), Type.Null()], { description: 'The active TensorFlow.js backend: tensorflow-gpu (TensorFlow on a GPU it found), tensorflow, wasm or cpu' }),
  engine: Type.Union([Type.String(), Type.Null()], {
    description: "What runs meta-training and adaptation of MLP bodies in this process: 'fused-wasm' (the fused WebAssembly SIMD kernels, on CPU backends) or 'tfjs-<backend>'; null before a backend is initialised",
  }),
  engines: Type.Optional(
    Type.Union([Type.Object({ mlp: Type.String(), conv: Type.String() }), Type.Null()], {
      description:
        "The engine per body, for algorithms that need only first-order derivatives of the body: mlp as `engine`; conv 'onnxruntime' (ONNX Runtime, when onnxruntime-node loads, on CPU backends) or 'tfjs-<backend>'. Second-order MAML and Meta-SGD through a conv body run on tfjs. Null before a backend is initialised",
    }),
  ),
};

const UP = {
  postgres: { status: 'up', latencyMs: 2 },
  redis: { status: 'up', latencyMs: 1 },
  tfjs: { status: 'up', latencyMs: 0 },
};

export const Ready = Type.Object({ status: Type.Literal('ready'), ...checks }, { examples: [{ status: 'ready', checks: UP, backend: 'wasm', engine: 'fused-wasm', engines: { mlp: 'fused-wasm', conv: 'onnxruntime' } }] });
export type Ready = Static<typeof Ready>;

/** 503 body: problem details plus the same checks, so an operator sees which one failed and why. */
export const NotReady = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Literal(503),
  detail: Type.String(),
  instance: Type.String(),
  ...checks,
}, {
  examples: [{
    type: 'about:blank',
    title: 'Service Unavailable',
    status: 503,
    detail: 'Not ready: redis (connect ECONNREFUSED 127.0.0.1:6379)',
    instance: '/readyz',
    checks: { ...UP, redis: { status: 'down', latencyMs: 3, error: 'connect ECONNREFUSED 127.0.0.1:6379' } },
    backend: 'wasm',
    engine: 'fused-wasm',
    engines: { mlp: 'fused-wasm', conv: 'onnxruntime' },
  }],
});
