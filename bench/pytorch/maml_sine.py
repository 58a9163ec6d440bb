#!/usr/bin/env python3
"""
The PyTorch baseline of `npm run bench:meta`: second-order MAML on sinusoids as learn2learn runs it
(for each task of the meta-batch: clone the parameters, one inner gradient step with
create_graph=True, the query loss of the adapted clone; the meta-loss is their mean; Adam), written
in plain PyTorch, so it is learn2learn's algorithm without its module-cloning overhead.

The setting is the MAML paper's and the engine benchmark's: 1-40-40-1 relu MLP with nn.Linear's
default initialisation, meta-batch 25, K=10 support + 10 query, 1 inner step at lr 0.01, Adam 0.001,
amplitude ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5], y = A sin(x - phase).

It prints one JSON object: the PyTorch version and threads, the training time and the meta-trained
parameters, named and laid out as the engine's (weights [in, out]), so that bench:meta scores them on
exactly the test tasks it scores its own model on. (bench:meta times every algorithm, batched and
per task, with meta_baseline.py.)

Usage: python3 bench/pytorch/maml_sine.py --iterations N [--seed S]
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

SETTING = dict(meta_batch=25, shots=10, query_shots=10, inner_lr=0.01, meta_lr=0.001)


def sample_batch(tasks, points):
    """x, y of `tasks` sinusoid tasks with `points` inputs each: [tasks, points, 1]."""
    amplitude = torch.empty(tasks, 1, 1).uniform_(0.1, 5.0)
    phase = torch.empty(tasks, 1, 1).uniform_(0.0, math.pi)
    x = torch.empty(tasks, points, 1).uniform_(-5.0, 5.0)
    return x, amplitude * torch.sin(x - phase)


def forward(params, x):
    w1, b1, w2, b2, w3, b3 = params
    h = F.relu(F.linear(x, w1, b1))
    h = F.relu(F.linear(h, w2, b2))
    return F.linear(h, w3, b3)


def meta_step(params, optimiser):
    """One outer step over a meta-batch, task by task as learn2learn's MAML.clone()/adapt() does."""
    s = SETTING
    x, y = sample_batch(s['meta_batch'], s['shots'] + s['query_shots'])
    meta_loss = 0.0
    for t in range(s['meta_batch']):
        xs, ys = x[t, : s['shots']], y[t, : s['shots']]
        xq, yq = x[t, s['shots']:], y[t, s['shots']:]
        support_loss = F.mse_loss(forward(params, xs), ys)
        grads = torch.autograd.grad(support_loss, params, create_graph=True)
        adapted = [p - s['inner_lr'] * g for p, g in zip(params, grads)]
        meta_loss = meta_loss + F.mse_loss(forward(adapted, xq), yq)
    meta_loss = meta_loss / s['meta_batch']
    optimiser.zero_grad()
    meta_loss.backward()
    optimiser.step()
    return meta_loss.item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--iterations', type=int, required=True, help='meta-train this many iterations and print the parameters')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    # nn.Linear's default initialisation, as learn2learn's sine example gets it.
    model = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))
    params = list(model.parameters())
    optimiser = torch.optim.Adam(params, lr=SETTING['meta_lr'])
    out = {'torch': torch.__version__, 'threads': torch.get_num_threads()}

    start = time.perf_counter()
    for _ in range(args.iterations):
        loss = meta_step(params, optimiser)
        if not math.isfinite(loss):
            raise SystemExit(f'meta-loss is {loss}')
    out['iterations'] = args.iterations
    out['trainSeconds'] = time.perf_counter() - start
    names = ['body.0.weight', 'body.0.bias', 'body.1.weight', 'body.1.bias', 'head.weight', 'head.bias']
    # torch keeps weights as [out, in]; the engine as [in, out].
    arrays = [p.detach().t() if p.dim() == 2 else p.detach() for p in params]
    out['params'] = {name: {'shape': list(a.shape), 'data': a.contiguous().view(-1).tolist()} for name, a in zip(names, arrays)}

    print(json.dumps(out))


if __name__ == '__main__':
    main()
