#!/usr/bin/env python3
"""
bench:meta's PyTorch baselines (algorithms.py): every algorithm on every setting the bench times,
in three forms (batched across the meta-batch, functorch's vmap of grad, and a per-task loop), one
thread, Adam with foreach=True.

  --check   prints, as JSON, how far the batched and the functorch meta-gradients are from the
            per-task loop's on the same batch and parameters, for every algorithm on every setting
            of its task kind (one row per form).
  --serve   a long-lived timing server for bench:meta, one JSON request per stdin line, one JSON reply
            per stdout line, so that bench:meta can interleave PyTorch's timing blocks with the
            engine's (rounds alternate the engine's blocks and PyTorch's, and a load change hits all alike):
              {"op": "setup", "case": ID, "algorithm": A, "setting": S, "seed": N} -> {"setting": {...}}
              {"op": "warmup", "case": ID, "mode": "batched"|"functorch"|"loop", "ms": N, "minIterations": N}
                  -> {"iterations": N, "ms": ms per meta-iteration, sampling included}
              {"op": "time", "case": ID, "mode": M, "ms": N, "iterations": N}
                  -> {"ms": ms per meta-iteration, "iterations": N, "blockMs": ms} (a block of at
                     least "ms" milliseconds, on "iterations" batches sampled before its timer starts)
              {"op": "gradient", "algorithm": A, "setting": S, "params": {name: [..]}, "batch": {..}}
                  -> {"loss": .., "grads": {name: [..]}} (the batched meta-gradient of given data)
            A failed request answers {"error": message}.

A timed meta-iteration is what the engine's is: the meta-gradient of one meta-batch (sampled before
the timer starts) and the Adam update. The inputs are drawn here with the engine's shapes and
distributions (sinusoids as the engine's; blobs with the engine's mean scale 3 and spread 1; for the
digits-size setting uniform pixels, since only the shapes matter for time).

Usage: /usr/bin/python3 bench/pytorch/meta_baseline.py --check | --serve
"""
import argparse
import json
import math
import sys
import time

import torch

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
from algorithms import ALGORITHMS, LR_PREFIX, META_GRADIENT  # noqa: E402

FORMS = tuple(META_GRADIENT)  # batched, functorch, loop

# The settings bench:meta times (bench/meta.ts sends their names and checks these values against its own).
SETTINGS = {
    'sinusoid': dict(kind='regression', sizes=[1, 40, 40, 1], ways=1, meta_batch=25, support=10, query=10, steps=1, inner_lr=0.01, meta_lr=0.001),
    'blobs': dict(kind='classification', sizes=[1, 40, 40, 5], ways=5, meta_batch=25, support=10, query=10, steps=1, inner_lr=0.01, meta_lr=0.001),
    'digits': dict(kind='classification', sizes=[196, 128, 64, 5], ways=5, meta_batch=8, support=5, query=25, steps=1, inner_lr=0.4, meta_lr=0.001),
}
KINDS = {'regression': [a for a in ALGORITHMS if a != 'protonet'], 'classification': list(ALGORITHMS)}


def init_theta(algorithm, s, dtype=torch.float32):
    """nn.Linear's initialisation (weights and biases U(+-1/sqrt(fan_in))) in the engine's layout and
    names; Meta-SGD adds its rates (the inner lr), ProtoNets keep only the body."""
    theta = []
    sizes = s['sizes']
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        name = 'head' if i == len(sizes) - 2 else f'body.{i}'
        bound = 1 / math.sqrt(fan_in)
        theta.append((f'{name}.weight', torch.empty(fan_in, fan_out, dtype=dtype).uniform_(-bound, bound)))
        theta.append((f'{name}.bias', torch.empty(fan_out, dtype=dtype).uniform_(-bound, bound)))
    if algorithm == 'protonet':
        theta = theta[:-2]
    if algorithm == 'metasgd':
        theta += [(LR_PREFIX + n, torch.full_like(p, s['inner_lr'])) for n, p in theta]
    return [(n, p.requires_grad_()) for n, p in theta]


def sample_batch(setting, dtype=torch.float32):
    """((xs, ys), (xq, yq)) of one meta-batch: [T, n, in] inputs, [T, n, 1] values or [T, n, C] one-hot labels."""
    s = SETTINGS[setting]
    tasks, points, inputs = s['meta_batch'], s['support'] + s['query'], s['sizes'][0]
    if setting == 'sinusoid':
        amplitude = torch.empty(tasks, 1, 1, dtype=dtype).uniform_(0.1, 5.0)
        phase = torch.empty(tasks, 1, 1, dtype=dtype).uniform_(0.0, math.pi)
        x = torch.empty(tasks, points, inputs, dtype=dtype).uniform_(-5.0, 5.0)
        y = amplitude * torch.sin(x - phase)
        return (x[:, :s['support']], y[:, :s['support']]), (x[:, s['support']:], y[:, s['support']:])

    def part(n):
        # Examples grouped by class, as the engine's episodes are.
        labels = torch.arange(s['ways']).repeat_interleave(n // s['ways'])
        y = torch.nn.functional.one_hot(labels, s['ways']).to(dtype).expand(tasks, -1, -1)
        if setting == 'blobs':
            means = 3 * torch.randn(tasks, s['ways'], inputs, dtype=dtype)
            return means[:, labels] + torch.randn(tasks, n, inputs, dtype=dtype), y
        return torch.rand(tasks, n, inputs, dtype=dtype), y
    return part(s['support']), part(s['query'])


def check(dtype):
    """The batched and the functorch meta-gradient against the per-task loop's, of every algorithm on
    every setting of its kind: one row per form."""
    rows = []
    for setting, s in SETTINGS.items():
        for algorithm in KINDS[s['kind']]:
            torch.manual_seed(0)
            theta = init_theta(algorithm, s, dtype)
            batch = sample_batch(setting, dtype)
            loop_loss, loop = META_GRADIENT['loop'](algorithm, theta, batch, s)
            for form in FORMS:
                if form == 'loop':
                    continue
                loss, grads = META_GRADIENT[form](algorithm, theta, batch, s)
                rows.append({
                    'algorithm': algorithm,
                    'setting': setting,
                    'form': form,
                    'maxAbsDiff': max((g - l).abs().max().item() for g, l in zip(grads, loop)),
                    'maxAbsGradient': max(g.abs().max().item() for g in loop),
                    'lossDiff': abs(loss.item() - loop_loss.item()),
                })
    return rows


class Case:
    """One (algorithm, setting) being timed: its meta-parameters, Adam and a batch source."""

    def __init__(self, algorithm, setting, seed):
        torch.manual_seed(seed)
        self.algorithm, self.setting, self.s = algorithm, setting, SETTINGS[setting]
        self.theta = init_theta(algorithm, self.s)
        # foreach: one multi-tensor update over all parameters (1.13's default is a Python loop over them).
        self.optimiser = torch.optim.Adam([p for _, p in self.theta], lr=self.s['meta_lr'], foreach=True)

    def step(self, batch, mode):
        loss, grads = META_GRADIENT[mode](self.algorithm, self.theta, batch, self.s)
        for (_, p), g in zip(self.theta, grads):
            p.grad = g
        self.optimiser.step()
        return loss

    def time(self, mode, ms, iterations):
        """A timed block: meta-steps until `ms` have passed, on `iterations` batches sampled before the
        timer starts (the expected count; reused in turn if the block needs more). Returns the block's
        ms per meta-iteration, its iterations and its length in ms."""
        batches = [sample_batch(self.setting) for _ in range(iterations)]
        done, start = 0, time.perf_counter()
        while True:
            self.step(batches[done % iterations], mode)
            done += 1
            elapsed = (time.perf_counter() - start) * 1000
            if elapsed >= ms:
                return {'ms': elapsed / done, 'iterations': done, 'blockMs': elapsed}

    def warmup(self, mode, ms, min_iterations):
        """Meta-steps for `ms` (at least `min_iterations`); their mean ms per iteration, sampling included."""
        start, done = time.perf_counter(), 0
        while done < min_iterations or (time.perf_counter() - start) * 1000 < ms:
            self.step(sample_batch(self.setting), mode)
            done += 1
        return {'iterations': done, 'ms': (time.perf_counter() - start) * 1000 / done}


def gradient(request):
    """The batched meta-gradient of the given parameters and meta-batch (float32, the engine's layout)."""
    algorithm, s = request['algorithm'], SETTINGS[request['setting']]
    theta = [(n, torch.tensor(v['data'], dtype=torch.float32).view(v['shape']).requires_grad_()) for n, v in request['params'].items()]

    def examples(part):
        x = torch.tensor(part['x'], dtype=torch.float32).view(s['meta_batch'], -1, s['sizes'][0])
        y = torch.tensor(part['y'], dtype=torch.long if s['kind'] == 'classification' else torch.float32).view(s['meta_batch'], -1)
        return x, (torch.nn.functional.one_hot(y, s['ways']).float() if s['kind'] == 'classification' else y.unsqueeze(-1))
    batch = examples(request['batch']['support']), examples(request['batch']['query'])
    loss, grads = META_GRADIENT['batched'](algorithm, theta, batch, s)
    return {'loss': loss.item(), 'grads': {n: g.reshape(-1).tolist() for (n, _), g in zip(theta, grads)}}


def serve():
    cases = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            op = request['op']
            if op == 'setup':
                cases[request['case']] = Case(request['algorithm'], request['setting'], request.get('seed', 0))
                reply = {'setting': SETTINGS[request['setting']]}
            elif op == 'warmup':
                reply = cases[request['case']].warmup(request['mode'], request['ms'], request['minIterations'])
            elif op == 'time':
                reply = cases[request['case']].time(request['mode'], request['ms'], request['iterations'])
            elif op == 'gradient':
                reply = gradient(request)
            else:
                raise ValueError(f'unknown op {op!r}')
        except Exception as err:  # the reply says what failed; the server keeps serving
            reply = {'error': f'{type(err).__name__}: {err}'}
        print(json.dumps(reply), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument('--check', action='store_true', help='print batched vs loop meta-gradient differences as JSON')
    mode.add_argument('--serve', action='store_true', help='answer timing requests on stdin/stdout (bench:meta)')
    parser.add_argument('--dtype', choices=['float32', 'float64'], default='float32', help='--check only')
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = {'torch': torch.__version__, 'threads': torch.get_num_threads()}
    if args.check:
        print(json.dumps({**info, 'dtype': args.dtype, 'checks': check(getattr(torch, args.dtype))}))
    else:
        print(json.dumps(info), flush=True)
        serve()


if __name__ == '__main__':
    main()
