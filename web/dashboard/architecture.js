// A model's architecture in a few characters, the same wherever the board shows one (jobs, meta-models,
// evaluations, the task panel): the body and its widths, and for a conv body the images it reads.

/**
 * `mlp 128-64`, or `conv 64-64-64-64 on 14x14x1`; the activation only when it is not the default relu.
 * `model` is a job's or meta-model's `model` (the API fills in `body`, mlp for rows older than conv bodies).
 */
export function describeArchitecture(model) {
  if (!model) return '';
  const text = model.body === 'conv'
    ? `conv ${(model.channels ?? []).join('-')} on ${(model.inputShape ?? []).join('x')}`
    : `mlp ${(model.hidden ?? []).join('-')}`;
  return model.activation && model.activation !== 'relu' ? `${text} (${model.activation})` : text;
}
