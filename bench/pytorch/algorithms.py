"""
The six meta-learning algorithms of the engine (src/meta/algorithms/*) in plain PyTorch, each three
ways, for bench:meta's PyTorch baselines:

- batched ("vmap-style"): the whole meta-batch at once. The shared parameters are expanded to
  per-task copies ([T, in, out] weights, [T, 1, out] biases; views, no copy), every layer is one
  `torch.baddbmm`, and the inner step is ONE `torch.autograd.grad(create_graph=...)` of the SUM of
  the per-task support losses with respect to the expanded copies: task t's loss depends only on
  slice t, so slice t of that gradient is exactly task t's own gradient.
- functorch: PyTorch's own idiom for per-task gradients (torch 1.13 ships functorch): one task's
  meta-loss written as a function of the shared parameters, its inner steps taken with
  `functorch.grad` (nested in the outer `grad_and_value`, so the meta-gradient is second order for
  MAML, Meta-SGD and ANIL; FOMAML and Reptile differentiate the query loss at the adapted
  parameters only), and `functorch.vmap` over the tasks of the meta-batch.
- loop: one task at a time, as learn2learn runs them (clone, adapt, query loss, accumulate).

All three give the same meta-gradient (meta_baseline.py --check measures it); which is fastest
depends on the setting, so bench:meta times all three and compares the engine with the fastest. The semantics are the
engine's: an MLP with relu hidden layers ("body") and a linear "head", weights laid out [in, out];
per-task losses are means over examples (MSE over outputs too; cross-entropy of one-hot targets),
inner losses are summed over tasks, the outer objective is the mean over tasks of the post-adaptation
query loss. Meta-SGD adapts with learned per-parameter rates `lr.<name>` (initialised to the inner
lr); ANIL adapts only the head and differentiates through it; Reptile's meta-gradient is
theta - mean(phi) (its loss the post-adaptation query loss); ProtoNets have a body only and classify
a query by -|e - mu_c|^2 = 2 e.mu_c - |mu_c|^2 (+ a term equal for all classes).

A meta-gradient function takes (theta, batch, setting) and returns (loss, grads), grads aligned
with theta: a list of (name, tensor) pairs.
"""
import torch
import torch.nn.functional as F
from functorch import grad, grad_and_value, vmap

ALGORITHMS = ('maml', 'fomaml', 'reptile', 'anil', 'metasgd', 'protonet')
LR_PREFIX = 'lr.'


# ---------------------------------------------------------------------------------------------------
# The model and losses.

def dense(h, weight, bias):
    """h @ weight + bias. Per-task weights [T, in, out] with h [T, n, in]: one baddbmm. A shared
    weight [in, out]: one addmm over all rows (h [n, in] or [T, n, in])."""
    if weight.dim() == 3:
        return torch.baddbmm(bias, h, weight)
    return torch.addmm(bias, h.reshape(-1, h.shape[-1]), weight).view(*h.shape[:-1], weight.shape[1])


def embed(body, x):
    for weight, bias in body:
        x = F.relu(dense(x, weight, bias))
    return x


def forward(layers, x):
    return dense(embed(layers[:-1], x), *layers[-1])


def task_loss(kind, output, target):
    """Per-task mean loss: [T] for [T, n, .] inputs, a scalar for one task's [n, .]."""
    if kind == 'regression':
        return (output - target).square().mean(dim=(-2, -1))
    return -(target * F.log_softmax(output, dim=-1)).sum(-1).mean(-1)


def layers_of(params):
    """[(weight, bias), ...] from the flat list of parameter tensors (weight, bias, weight, ...)."""
    return list(zip(params[0::2], params[1::2]))


def per_task(p, tasks):
    """A shared parameter expanded (a view) to one copy per task: [in, out] -> [T, in, out], [out] -> [T, 1, out]."""
    return p.expand(tasks, *p.shape) if p.dim() == 2 else p.view(1, 1, -1).expand(tasks, 1, p.shape[0])


# ---------------------------------------------------------------------------------------------------
# The inner loop.

def inner_loop(kind, start, features, target, steps, lr, create_graph):
    """`steps` gradient steps of the task-summed support loss from `start` (a flat list of the adapted
    layers' tensors, per-task or, in the loop, one task's); `lr` a number or a list like `start`."""
    params = list(start)
    rates = lr if isinstance(lr, (list, tuple)) else [lr] * len(params)
    for _ in range(steps):
        loss = task_loss(kind, forward(layers_of(params), features), target).sum()
        grads = torch.autograd.grad(loss, params, create_graph=create_graph)
        params = [p - r * g for p, r, g in zip(params, rates, grads)]
    return params


def split(theta):
    """Model parameters (body then head, in order) and Meta-SGD's rates, as lists of tensors."""
    model = [(n, p) for n, p in theta if not n.startswith(LR_PREFIX)]
    rates = dict((n[len(LR_PREFIX):], p) for n, p in theta if n.startswith(LR_PREFIX))
    return [p for _, p in model], [rates[n] for n, _ in model] if rates else None


def adapt(algorithm, theta, xs, ys, s, batched, create_graph):
    """Adapted model parameters of every task (batched) or of one task (loop): a flat list of tensors,
    body then head. ANIL adapts only the head: the body stays shared."""
    params, rates = split(theta)
    lift = (lambda p: per_task(p, xs.shape[0])) if batched else (lambda p: p)
    if algorithm == 'anil':
        body, head = params[:-2], params[-2:]
        features = embed(layers_of(body), xs)
        return body + inner_loop(s['kind'], [lift(p) for p in head], features, ys, s['steps'], s['inner_lr'], create_graph)
    lr = rates if algorithm == 'metasgd' else s['inner_lr']
    return inner_loop(s['kind'], [lift(p) for p in params], xs, ys, s['steps'], lr, create_graph)


def prototype_logits(body, xs, ys, xq):
    """ProtoNets' logits of the query set: 2 e.mu_c - |mu_c|^2 for class means mu_c of the support
    embeddings (one task: [n, .]; batched: [T, n, .])."""
    support, query = embed(layers_of(body), xs), embed(layers_of(body), xq)
    counts = ys.sum(-2).clamp(min=1).unsqueeze(-1)  # [.., C, 1]; every class has >= 1 shot
    prototypes = ys.transpose(-2, -1).matmul(support) / counts  # [.., C, D]
    return 2 * query.matmul(prototypes.transpose(-2, -1)) - prototypes.square().sum(-1).unsqueeze(-2)


# ---------------------------------------------------------------------------------------------------
# Meta-gradients: one task's (loop) or the whole meta-batch's (batched), as (loss, grads).

def meta_gradient_of(algorithm, theta, xs, ys, xq, yq, s, batched):
    """Mean query loss and meta-gradient of the tasks in (xs, ys, xq, yq): the whole meta-batch when
    `batched`, else one task."""
    kind, tensors = s['kind'], [p for _, p in theta]
    if algorithm == 'protonet':
        loss = task_loss(kind, prototype_logits(tensors, xs, ys, xq), yq).mean()
        return loss.detach(), torch.autograd.grad(loss, tensors)
    if algorithm in ('maml', 'anil', 'metasgd'):
        adapted = adapt(algorithm, theta, xs, ys, s, batched, create_graph=True)
        loss = task_loss(kind, forward(layers_of(adapted), xq), yq).mean()
        return loss.detach(), torch.autograd.grad(loss, tensors)
    adapted = [p.detach().requires_grad_() for p in adapt(algorithm, theta, xs, ys, s, batched, create_graph=False)]
    loss = task_loss(kind, forward(layers_of(adapted), xq), yq).mean()
    if algorithm == 'reptile':
        mean_phi = [a.mean(0).view_as(p) if batched else a for a, p in zip(adapted, tensors)]
        return loss.detach(), [(p - phi).detach() for p, phi in zip(tensors, mean_phi)]
    # FOMAML: the query-loss gradient at the adapted parameters; the loss is a mean over tasks, so
    # summing the per-task slices gives the task-mean gradient.
    grads = torch.autograd.grad(loss, adapted)
    return loss.detach(), [g.sum(0).view_as(p) if batched else g for g, p in zip(grads, tensors)]


def batched_meta_gradient(algorithm, theta, batch, s):
    (xs, ys), (xq, yq) = batch
    return meta_gradient_of(algorithm, theta, xs, ys, xq, yq, s, batched=True)


def loop_meta_gradient(algorithm, theta, batch, s):
    """Task by task, averaged: learn2learn's way."""
    (xs, ys), (xq, yq) = batch
    tasks = xs.shape[0]
    loss, grads = 0.0, [torch.zeros_like(p) for _, p in theta]
    for t in range(tasks):
        one_loss, one_grads = meta_gradient_of(algorithm, theta, xs[t], ys[t], xq[t], yq[t], s, batched=False)
        loss = loss + one_loss
        grads = [g + o for g, o in zip(grads, one_grads)]
    return loss / tasks, [g / tasks for g in grads]


def functorch_meta_gradient(algorithm, theta, batch, s):
    """The whole meta-batch with functorch: vmap over tasks of one task's (gradient, loss)."""
    (xs, ys), (xq, yq) = batch
    kind, steps, names = s['kind'], s['steps'], [n for n, _ in theta]
    # functorch differentiates the arguments it is given: plain tensors, not the optimiser's leaves.
    tensors = [p.detach() for _, p in theta]
    tasks = (0, 0, 0, 0)

    def adapt_one(ts, x, y):
        """One task's adapted parameters (body then head), each inner step a functorch.grad."""
        params, rates = split(list(zip(names, ts)))
        start, fixed, features = params, [], x
        if algorithm == 'anil':
            fixed, start = params[:-2], params[-2:]
            features = embed(layers_of(fixed), x)
        lr = rates if algorithm == 'metasgd' else [s['inner_lr']] * len(start)
        adapted = list(start)
        for _ in range(steps):
            g = grad(lambda ps: task_loss(kind, forward(layers_of(ps), features), y))(adapted)
            adapted = [p - r * gi for p, r, gi in zip(adapted, lr, g)]
        return fixed + adapted

    def query_loss(params, x, y):
        return task_loss(kind, forward(layers_of(params), x), y)

    if algorithm in ('maml', 'anil', 'metasgd', 'protonet'):
        def meta_loss(ts, x, y, x_query, y_query):
            if algorithm == 'protonet':
                return task_loss(kind, prototype_logits(ts, x, y, x_query), y_query)
            return query_loss(adapt_one(ts, x, y), x_query, y_query)
        grads, losses = vmap(grad_and_value(meta_loss), in_dims=(None, *tasks))(tensors, xs, ys, xq, yq)
        return losses.mean(), [g.mean(0) for g in grads]

    def first_order(ts, x, y, x_query, y_query):
        adapted = adapt_one(ts, x, y)
        g, loss = grad_and_value(query_loss)(adapted, x_query, y_query)
        return g, loss, adapted
    grads, losses, adapted = vmap(first_order, in_dims=(None, *tasks))(tensors, xs, ys, xq, yq)
    if algorithm == 'reptile':
        return losses.mean(), [p - a.mean(0) for p, a in zip(tensors, adapted)]
    return losses.mean(), [g.mean(0) for g in grads]


META_GRADIENT = {'batched': batched_meta_gradient, 'functorch': functorch_meta_gradient, 'loop': loop_meta_gradient}
