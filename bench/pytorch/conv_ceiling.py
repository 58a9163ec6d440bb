"""PyTorch's side of bench/conv-ceiling.ts, on one thread: ms per 3x3 'same' convolution (forward
only) for each of the given shapes, and ms per forward and backward pass of the whole Conv-4 body
(digits_protonet.py's Conv4, GroupNorm(1, C)) on n images, the sum of its outputs as the loss.

    python3 conv_ceiling.py --shapes '[[n, h, w, cin, cout], ...]' --images 80,100 --ms 400 --rounds 7

Prints one JSON object: {torch, threads, conv: [{shape, ms}], body: [{images, ms}]}, medians over rounds.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

from digits_protonet import Conv4

torch.set_num_threads(1)


def ms_per_call(call, ms, rounds):
    """Median over rounds of the mean ms per call, each round calling for about `ms` milliseconds."""
    call()  # warm-up
    per = []
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while (time.perf_counter() - start) * 1000 < ms:
            call()
            calls += 1
        per.append((time.perf_counter() - start) * 1000 / calls)
    per.sort()
    return per[len(per) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--shapes', required=True)
    parser.add_argument('--images', required=True)
    parser.add_argument('--channels', default='64,64,64,64')
    parser.add_argument('--ms', type=float, default=400)
    parser.add_argument('--rounds', type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    conv = []
    for n, h, w, cin, cout in json.loads(args.shapes):
        x, k = torch.randn(n, cin, h, w), torch.randn(cout, cin, 3, 3)
        with torch.no_grad():
            conv.append({'shape': [n, h, w, cin, cout], 'ms': ms_per_call(lambda: F.conv2d(x, k, padding=1), args.ms, args.rounds)})
    body = []
    net = Conv4([int(c) for c in args.channels.split(',')])
    for n in (int(i) for i in args.images.split(',')):
        x = torch.rand(n, 196)

        def step():
            net.zero_grad()
            net(x).sum().backward()

        body.append({'images': n, 'ms': ms_per_call(step, args.ms, args.rounds)})
    print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'conv': conv, 'body': body}))


if __name__ == '__main__':
    main()
