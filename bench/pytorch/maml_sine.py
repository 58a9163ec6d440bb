#!/usr/bin/env python3
"""
The PyTorch baseline of `npm run bench:meta`'s quality run: second-order MAML on sinusoids, learn2learn's
algorithm (for each task of the meta-batch: one inner gradient step with create_graph=True from the
shared parameters, the query loss of the adapted parameters; the meta-loss is their mean; Adam),
written in plain PyTorch. It trains with the meta-batch batched (algorithms.py's `batched` form:
parameters expanded to per-task copies, one create_graph gradient of the summed support losses),
which gives the per-task loop's meta-gradient to float rounding (meta_baseline.py --check measures
it) in a fraction of the time; the form changes the speed, not the algorithm.

The setting is the MAML paper's and the engine benchmark's: 1-40-40-1 relu MLP with nn.Linear's
default initialisation, meta-batch 25, K=10 support + 10 query, 1 inner step at lr 0.01, Adam 0.001,
amplitude ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5], y = A sin(x - phase).

It prints one JSON object: the PyTorch version and threads, the training time and the meta-trained
parameters, named and laid out as the engine's (weights [in, out]), so that bench:meta scores them on
exactly the test tasks it scores its own model on. (bench:meta times every algorithm, in every form,
with meta_baseline.py.)

Usage: python3 bench/pytorch/maml_sine.py --iterations N [--seed S]
"""
import argparse
import json
import math
import time

import torch
from torch import nn

from algorithms import batched_meta_gradient

SETTING = dict(meta_batch=25, shots=10, query_shots=10, inner_lr=0.01, meta_lr=0.001)


def sample_batch(tasks, points):
    """x, y of `tasks` sinusoid tasks with `points` inputs each: [tasks, points, 1]."""
    amplitude = torch.empty(tasks, 1, 1).uniform_(0.1, 5.0)
    phase = torch.empty(tasks, 1, 1).uniform_(0.0, math.pi)
    x = torch.empty(tasks, points, 1).uniform_(-5.0, 5.0)
    return x, amplitude * torch.sin(x - phase)


NAMES = ['body.0.weight', 'body.0.bias', 'body.1.weight', 'body.1.bias', 'head.weight', 'head.bias']
INNER = dict(kind='regression', steps=1, inner_lr=SETTING['inner_lr'])


def meta_step(theta, optimiser):
    """One outer step over a meta-batch, the whole meta-batch at once (algorithms.py, batched)."""
    s = SETTING
    x, y = sample_batch(s['meta_batch'], s['shots'] + s['query_shots'])
    batch = ((x[:, : s['shots']], y[:, : s['shots']]), (x[:, s['shots']:], y[:, s['shots']:]))
    loss, grads = batched_meta_gradient('maml', theta, batch, INNER)
    for (_, p), g in zip(theta, grads):
        p.grad = g
    optimiser.step()
    return loss.item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--iterations', type=int, required=True, help='meta-train this many iterations and print the parameters')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    # nn.Linear's default initialisation, as learn2learn's sine example gets it; torch keeps weights
    # as [out, in], the engine and algorithms.py as [in, out].
    model = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))
    leaves = [(p.detach().t() if p.dim() == 2 else p.detach()).contiguous().requires_grad_() for p in model.parameters()]
    theta = list(zip(NAMES, leaves))
    optimiser = torch.optim.Adam(leaves, lr=SETTING['meta_lr'], foreach=True)
    out = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'form': 'batched'}

    start = time.perf_counter()
    for _ in range(args.iterations):
        loss = meta_step(theta, optimiser)
        if not math.isfinite(loss):
            raise SystemExit(f'meta-loss is {loss}')
    out['iterations'] = args.iterations
    out['trainSeconds'] = time.perf_counter() - start
    out['params'] = {name: {'shape': list(a.shape), 'data': a.detach().contiguous().view(-1).tolist()} for name, a in theta}

    print(json.dumps(out))


if __name__ == '__main__':
    main()
