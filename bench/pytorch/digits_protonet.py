#!/usr/bin/env python3
"""
The PyTorch baseline of bench:meta's `digits` quality run: prototypical networks (Snell et al., 2017)
meta-trained on the engine's own training classes and scored on exactly the test episodes the engine
is scored on, both exported by bench/pytorch/digits.ts (writeDigitsData), so that the two differ only
in the implementation.

Meta-training: every iteration samples `meta-batch` training episodes by the engine's rule (`ways`
distinct confusion groups, one class of each at random, `shots + query-shots` distinct images of each
class, class-major, support first), embeds support and query images with the body, takes each class's
mean support embedding as its prototype, scores each query by minus its squared Euclidean distance to
each prototype, and steps Adam on the mean query cross-entropy over the meta-batch.

Test: the exported episodes of `--shots` shots, prototypes from their support sets (no fine-tuning),
accuracy per episode, mean and 95% half-width (1.96 standard errors, sample variance as the engine's
meanCi). For reference the same episodes are scored with raw pixels (no training): nearest class mean
by Euclidean distance and by cosine similarity.

With --algorithm anil: ANIL (Raghu et al., 2020) instead, as the engine's anil: a linear head
[D] -> [ways] on the body's embedding; each task's head takes `--inner-steps` plain gradient steps of
`--inner-lr` on its support set's mean cross-entropy (the body fixed, its support embeddings computed
once), with create_graph so that the meta-gradient flows through the head's adaptation into the body
and the head's initialisation; the meta-loss is the mean query cross-entropy of the adapted heads over
the meta-batch, stepped by Adam. --zero-head: every task's head starts at zero and only the body is
meta-learned (the engine's zeroHead). Test: each episode's head adapted by `--test-steps` steps from
its support set, accuracy on its queries.

Bodies (the engine implements the same):
  conv  Conv-4: [n, 196] -> [n, 1, 14, 14]; per width c: Conv2d(3x3, padding 1, bias) -> GroupNorm(1, c)
        (per-example normalisation over C, H, W with a per-channel affine, no running statistics) -> ReLU
        -> MaxPool2d(2, ceil_mode) (14 -> 7 -> 4 -> 2 -> 1); flattened NHWC; PyTorch's default init.
  mlp   196 -> hidden... with ReLU after every layer (nn.Linear's default init).

Prints one JSON line: body, shots, ways, queryShots, iterations, metaBatch, accuracy, ci95, testEpisodes,
msPerIteration (training wall time including sampling, per iteration), stepMsPerIteration (forward,
backward and Adam only), trainSeconds, firstTrainLosses, rawPixel {euclidean, cosine}, threads, torch,
and a few more.

Usage: /usr/bin/python3 bench/pytorch/digits_protonet.py --data DIR --body conv|mlp --shots S
         --iterations N [--seed K] [--ways 5] [--query-shots 15] [--meta-batch 1] [--meta-lr 0.001]
         [--channels 64,64,64,64] [--hidden 128,64]
         [--algorithm protonet|anil] [--zero-head] [--inner-lr 0.4] [--inner-steps 1] [--test-steps 3]
"""
import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# The data layout digits.ts writes (its DIGITS_DATA_FORMAT).
FORMAT = 'fastadapt-digits/1'
# Test episodes embedded at once: bounds the conv activations (25 x 80 images x 64 x 14 x 14 floats).
EVAL_CHUNK = 25


# ---------------------------------------------------------------------------------------------------
# The exported data.

def read_floats(data_dir, name, rows, cols):
    """A little-endian float32 file as a [rows, cols] tensor; its size must be exactly that."""
    array = np.fromfile(os.path.join(data_dir, name), dtype='<f4')
    if array.size != rows * cols:
        raise SystemExit(f'{name}: {array.size} floats, expected {rows} x {cols}')
    return torch.from_numpy(array.astype(np.float32)).view(rows, cols)


def load(data_dir, shots):
    """(train, test): the training images [N, 196] with the groups of classes (offset, count), and the
    test episodes of `shots` shots as tensors."""
    with open(os.path.join(data_dir, 'digits.json'), encoding='utf-8') as f:
        header = json.load(f)
    if header.get('format') != FORMAT:
        raise SystemExit(f"{data_dir}/digits.json: format {header.get('format')!r}, expected {FORMAT!r}")
    dim = header['inputDim']
    train = header['train']
    images = read_floats(data_dir, train['file'], train['images'], dim)
    groups = [[(c['offset'], c['count']) for c in group] for group in train['groups']]
    episodes = header['test'].get(str(shots))
    if episodes is None:
        raise SystemExit(f"{data_dir} has no {shots}-shot test episodes (it has {', '.join(header['test']) or 'none'})")
    tasks, ways, files = episodes['tasks'], episodes['ways'], episodes['files']
    ns, nq = episodes['supportSize'], episodes['querySize']
    test = {
        'ways': ways,
        'queryShots': episodes['queryShots'],
        'support_x': read_floats(data_dir, files['supportX'], tasks * ns, dim).view(tasks, ns, dim),
        'support_y': read_floats(data_dir, files['supportY'], tasks, ns).round().long(),
        'query_x': read_floats(data_dir, files['queryX'], tasks * nq, dim).view(tasks, nq, dim),
        'query_y': read_floats(data_dir, files['queryY'], tasks, nq).round().long(),
    }
    for part in ('support_y', 'query_y'):
        if test[part].min() < 0 or test[part].max() >= ways:
            raise SystemExit(f'{shots}-shot test episodes: {part} labels outside 0..{ways - 1}')
    return (images, groups), test


def sample_episodes(rng, train, ways, shots, query_shots, tasks):
    """`tasks` training episodes by the engine's rule (digits.ts sampleEpisode): `ways` distinct groups,
    one class of each, `shots + query_shots` distinct images per class; class-major, support first.
    Returns support x [T, ways*shots, 196], support y, query x [T, ways*query_shots, 196], query y."""
    images, groups = train
    per = shots + query_shots
    picks = []  # [T][ways][per] image rows
    for _ in range(tasks):
        classes = [rng.choice(groups[g]) for g in rng.sample(range(len(groups)), ways)]
        picks.append([[offset + i for i in rng.sample(range(count), per)] for offset, count in classes])
    index = torch.tensor(picks)  # [T, ways, per]
    x = images[index]  # [T, ways, per, 196]
    labels = torch.arange(ways)

    def part(lo, hi):
        n = hi - lo
        return x[:, :, lo:hi].reshape(tasks, ways * n, -1), labels.repeat_interleave(n).expand(tasks, -1)
    return (*part(0, shots), *part(shots, per))


# ---------------------------------------------------------------------------------------------------
# The bodies.

class Conv4(nn.Module):
    """Conv-4 on 14x14 images; the embedding is the last width (the map is 1x1 after four pools)."""

    def __init__(self, channels):
        super().__init__()
        blocks, c_in = [], 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=True), nn.GroupNorm(1, c, eps=1e-5), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        h = self.blocks(x.view(-1, 1, 14, 14))
        # NHWC, the engine's layout (the same order at 1x1, kept so wider maps would match too).
        return h.permute(0, 2, 3, 1).flatten(1)


def mlp(widths):
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers)


def make_body(args, input_dim):
    if args.body == 'conv':
        return Conv4(args.channels)
    return mlp([input_dim, *args.hidden])


# ---------------------------------------------------------------------------------------------------
# ProtoNets.

def prototypes(support_embeddings, support_y, ways):
    """Class means of the support embeddings: [T, ways, D], from the labels (not the layout)."""
    one_hot = F.one_hot(support_y, ways).to(support_embeddings.dtype)  # [T, ns, ways]
    counts = one_hot.sum(1).clamp(min=1).unsqueeze(-1)  # [T, ways, 1]
    return one_hot.transpose(1, 2).bmm(support_embeddings) / counts


def proto_logits(query_embeddings, protos):
    """Minus the squared Euclidean distance of every query to every prototype: [T, nq, ways]."""
    return -(query_embeddings.unsqueeze(2) - protos.unsqueeze(1)).square().sum(-1)


def embed_episodes(body, support_x, query_x):
    """Support and query embeddings of [T, n, 196] episodes, in one pass through the body."""
    tasks, ns, nq = support_x.shape[0], support_x.shape[1], query_x.shape[1]
    e = body(torch.cat([support_x, query_x], 1).reshape(tasks * (ns + nq), -1)).view(tasks, ns + nq, -1)
    return e[:, :ns], e[:, ns:]


# ---------------------------------------------------------------------------------------------------
# ANIL.

class Anil(nn.Module):
    """The body and a linear head on its embedding; with zero_head the head is a constant zero (every
    task starts from it and nothing meta-learns it)."""

    def __init__(self, body, width, ways, zero_head):
        super().__init__()
        self.body = body
        self.ways = ways
        self.zero_head = zero_head
        self.head = None if zero_head else nn.Linear(width, ways)
        self.width = width

    def start(self, tasks):
        """Every task's head before adaptation: weight [T, ways, D] and bias [T, ways], differentiable."""
        if self.head is None:
            return (torch.zeros(tasks, self.ways, self.width, requires_grad=True), torch.zeros(tasks, self.ways, requires_grad=True))
        return self.head.weight.expand(tasks, -1, -1), self.head.bias.expand(tasks, -1)


def head_logits(features, weight, bias):
    """[T, n, D] features through per-task heads: [T, n, ways]."""
    return features.bmm(weight.transpose(1, 2)) + bias.unsqueeze(1)


def task_losses(logits, y):
    """Each task's mean cross-entropy: [T]."""
    tasks, n, ways = logits.shape
    return F.cross_entropy(logits.reshape(-1, ways), y.reshape(-1), reduction='none').view(tasks, n).mean(1)


def adapt_heads(model, support_features, support_y, lr, steps, create_graph):
    """Each task's head after `steps` gradient steps on its own support loss (the sum over tasks of
    per-task means: each task's slice of the gradient is its own loss's)."""
    weight, bias = model.start(support_features.shape[0])
    for _ in range(steps):
        loss = task_losses(head_logits(support_features, weight, bias), support_y).sum()
        gw, gb = torch.autograd.grad(loss, (weight, bias), create_graph=create_graph)
        weight, bias = weight - lr * gw, bias - lr * gb
    return weight, bias


def anil_loss(model, sx, sy, qx, qy, args):
    es, eq = embed_episodes(model.body, sx, qx)
    weight, bias = adapt_heads(model, es, sy, args.inner_lr, args.inner_steps, create_graph=True)
    return task_losses(head_logits(eq, weight, bias), qy).mean()


def anil_evaluate(model, test, args):
    """Accuracy of each test episode after `--test-steps` head steps on its support set: [E]."""
    accuracies = []
    tasks = test['support_x'].shape[0]
    for lo in range(0, tasks, EVAL_CHUNK):
        hi = min(lo + EVAL_CHUNK, tasks)
        with torch.no_grad():
            es, eq = embed_episodes(model.body, test['support_x'][lo:hi], test['query_x'][lo:hi])
        with torch.enable_grad():
            weight, bias = adapt_heads(model, es, test['support_y'][lo:hi], args.inner_lr, args.test_steps, create_graph=False)
        with torch.no_grad():
            logits = head_logits(eq, weight, bias)
            accuracies.append((logits.argmax(-1) == test['query_y'][lo:hi]).float().mean(1))
    return torch.cat(accuracies)


def protonet_loss(body, sx, sy, qx, qy, args):
    es, eq = embed_episodes(body, sx, qx)
    logits = proto_logits(eq, prototypes(es, sy, args.ways))
    # Every episode has as many queries, so the mean over all of them is the mean of episode means.
    return F.cross_entropy(logits.reshape(-1, args.ways), qy.reshape(-1))


def train(model, train_data, args):
    """Meta-trains the model (the body, or Anil); returns (wall seconds, seconds in forward/backward/Adam,
    losses, CPU seconds)."""
    rng = random.Random(args.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.meta_lr, foreach=True)
    step_loss = anil_loss if args.algorithm == 'anil' else protonet_loss
    losses, step_seconds = [], 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.iterations):
        sx, sy, qx, qy = sample_episodes(rng, train_data, args.ways, args.shots, args.query_shots, args.meta_batch)
        step_start = time.perf_counter()
        loss = step_loss(model, sx, sy, qx, qy, args)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step_seconds += time.perf_counter() - step_start
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise SystemExit(f'meta-loss is {losses[-1]} at iteration {len(losses)}')
    return time.perf_counter() - start, step_seconds, losses, time.process_time() - cpu_start


def mean_ci(values):
    """Mean and 1.96 standard errors (sample variance), as src/meta/evaluation.ts meanCi."""
    n = values.numel()
    if n < 2:
        return values.mean().item(), 0.0
    return values.mean().item(), 1.96 * values.std(unbiased=True).item() / math.sqrt(n)


@torch.no_grad()
def evaluate(body, test):
    """Accuracy of each test episode with prototypes from its support set: [E]."""
    accuracies = []
    tasks = test['support_x'].shape[0]
    for lo in range(0, tasks, EVAL_CHUNK):
        hi = min(lo + EVAL_CHUNK, tasks)
        es, eq = embed_episodes(body, test['support_x'][lo:hi], test['query_x'][lo:hi])
        logits = proto_logits(eq, prototypes(es, test['support_y'][lo:hi], test['ways']))
        accuracies.append((logits.argmax(-1) == test['query_y'][lo:hi]).float().mean(1))
    return torch.cat(accuracies)


@torch.no_grad()
def raw_pixel(test):
    """Nearest class mean on raw pixels, no training: mean accuracy by Euclidean distance and by cosine
    similarity to the class mean of the support images."""
    protos = prototypes(test['support_x'], test['support_y'], test['ways'])
    query = test['query_x']
    euclidean = proto_logits(query, protos)
    cosine = F.normalize(query, dim=-1).bmm(F.normalize(protos, dim=-1).transpose(1, 2))
    return {name: (s.argmax(-1) == test['query_y']).float().mean().item() for name, s in (('euclidean', euclidean), ('cosine', cosine))}


def widths(text):
    values = [int(v) for v in text.split(',') if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f'expected positive integers separated by commas, got {text!r}')
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--data', required=True, help='directory written by digits.ts writeDigitsData')
    parser.add_argument('--body', choices=['conv', 'mlp'], required=True)
    parser.add_argument('--shots', type=int, required=True, help='support images per class, training and test')
    parser.add_argument('--iterations', type=int, required=True, help='meta-iterations (0: score the initial body)')
    parser.add_argument('--seed', type=int, default=0, help='initialisation and training-episode sampling')
    parser.add_argument('--ways', type=int, default=5)
    parser.add_argument('--query-shots', type=int, default=15, help='query images per class in training episodes')
    parser.add_argument('--meta-batch', type=int, default=1, help='training episodes per iteration')
    parser.add_argument('--meta-lr', type=float, default=0.001, help='Adam learning rate')
    parser.add_argument('--channels', type=widths, default=[64, 64, 64, 64], help='Conv-4 widths (conv body)')
    parser.add_argument('--hidden', type=widths, default=[128, 64], help='MLP widths after the input (mlp body)')
    parser.add_argument('--algorithm', choices=['protonet', 'anil'], default='protonet')
    parser.add_argument('--zero-head', action='store_true', help='anil: every task\'s head starts at zero, not meta-learned')
    parser.add_argument('--inner-lr', type=float, default=0.4, help='anil: step size of the head\'s inner steps')
    parser.add_argument('--inner-steps', type=int, default=1, help='anil: head steps per task in training')
    parser.add_argument('--test-steps', type=int, default=3, help='anil: head steps per test episode')
    args = parser.parse_args()
    if args.zero_head and args.algorithm != 'anil':
        parser.error('--zero-head needs --algorithm anil')
    for name in ('shots', 'ways', 'query_shots', 'meta_batch', 'inner_steps', 'test_steps'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.iterations < 0:
        parser.error('--iterations must be at least 0')

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    train_data, test = load(args.data, args.shots)
    groups = len(train_data[1])
    if args.ways > groups:
        raise SystemExit(f'--ways {args.ways}: the training split has only {groups} groups of classes')
    if test['ways'] != args.ways:
        raise SystemExit(f"the {args.shots}-shot test episodes are {test['ways']}-way, --ways is {args.ways}")
    body = make_body(args, train_data[0].shape[1])
    if args.algorithm == 'anil':
        with torch.no_grad():
            width = body(train_data[0][:1]).shape[1]
        model = Anil(body, width, args.ways, args.zero_head)
    else:
        model = body

    seconds, step_seconds, losses, cpu_seconds = train(model, train_data, args)
    accuracy, ci95 = mean_ci(anil_evaluate(model, test, args) if args.algorithm == 'anil' else evaluate(body, test))
    iterations = max(args.iterations, 1)
    last = losses[-max(1, len(losses) // 10):]
    print(json.dumps({
        'algorithm': args.algorithm,
        'zeroHead': args.zero_head,
        'innerLr': args.inner_lr if args.algorithm == 'anil' else None,
        'innerSteps': args.inner_steps if args.algorithm == 'anil' else None,
        'testSteps': args.test_steps if args.algorithm == 'anil' else None,
        'body': args.body,
        'widths': args.channels if args.body == 'conv' else args.hidden,
        'parameters': sum(p.numel() for p in model.parameters()),
        'shots': args.shots,
        'ways': args.ways,
        'queryShots': args.query_shots,
        'iterations': args.iterations,
        'metaBatch': args.meta_batch,
        'metaLr': args.meta_lr,
        'seed': args.seed,
        'accuracy': accuracy,
        'ci95': ci95,
        'testEpisodes': test['support_x'].shape[0],
        'testQueryShots': test['queryShots'],
        'msPerIteration': seconds * 1000 / iterations,
        'stepMsPerIteration': step_seconds * 1000 / iterations,
        # The process's CPU time per iteration: on a busy shared machine, less moved by the load than wall time.
        'cpuMsPerIteration': cpu_seconds * 1000 / iterations,
        'trainSeconds': seconds,
        # Mean training loss over the last tenth of the iterations (null without training).
        'finalTrainLoss': sum(last) / len(last) if last else None,
        # The first iterations' losses: a check that training starts as the engine's does.
        'firstTrainLosses': losses[:10],
        'rawPixel': raw_pixel(test),
        'threads': torch.get_num_threads(),
        'torch': torch.__version__,
    }))


if __name__ == '__main__':
    main()
