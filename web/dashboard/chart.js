// Small SVG charts: line series and points on linear axes, drawn with DOM calls only (no innerHTML).
const SVG = 'http://www.w3.org/2000/svg';
const W = 720, H = 300, M = { left: 56, right: 130, top: 24, bottom: 34 };

function el(name, attrs = {}, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function extent(values) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) { lo -= 1; hi += 1; }
  return [lo, hi];
}

function ticks([lo, hi], count = 5) {
  const step = (hi - lo) / count;
  return Array.from({ length: count + 1 }, (_, i) => lo + i * step);
}

const fmt = (v) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : Number(v.toPrecision(3)).toString());

/**
 * Draws `series` ([{ name, label, points: [[x, y]], kind: 'line' | 'points', ci?, className? }]) into
 * `svg`, replacing what was there. `ci` (one half-width per point) adds a confidence bar at each
 * point (moved `dodge` px sideways, so bars of several series at one x stay apart); `className`
 * (default `name`) picks the colour. `logY` plots log10 of positive y (losses
 * span decades); a bar reaching zero or below is cut at a tenth of its point there.
 */
export function drawChart(svg, series, { xLabel = '', yLabel = '', logY = false } = {}) {
  svg.replaceChildren();
  const ty = (y) => (logY ? Math.log10(Math.max(y, 1e-12)) : y);
  const low = (y, ci) => (logY && y - ci <= 0 ? y / 10 : y - ci);
  const all = series.flatMap((s) => s.points.flatMap(([x, y], j) => (s.ci ? [[x, low(y, s.ci[j])], [x, y + s.ci[j]]] : [[x, y]])));
  if (all.length === 0) {
    el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, svg).textContent = 'no points yet';
    return;
  }
  const xs = extent(all.map((p) => p[0]));
  const ys = extent(all.map((p) => ty(p[1])));
  const px = (x) => M.left + ((x - xs[0]) / (xs[1] - xs[0])) * (W - M.left - M.right);
  const py = (y) => H - M.bottom - ((ty(y) - ys[0]) / (ys[1] - ys[0])) * (H - M.top - M.bottom);

  const axis = el('g', { class: 'axis' }, svg);
  for (const t of ticks(ys)) {
    const y = H - M.bottom - ((t - ys[0]) / (ys[1] - ys[0])) * (H - M.top - M.bottom);
    el('line', { class: 'grid', x1: M.left, x2: W - M.right, y1: y, y2: y }, axis);
    el('text', { x: M.left - 6, y: y + 4, 'text-anchor': 'end' }, axis).textContent = fmt(logY ? 10 ** t : t);
  }
  for (const t of ticks(xs)) {
    el('text', { x: px(t), y: H - M.bottom + 16, 'text-anchor': 'middle' }, axis).textContent = fmt(t);
  }
  el('line', { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }, axis);
  el('line', { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom }, axis);
  el('text', { x: (M.left + W - M.right) / 2, y: H - 4, 'text-anchor': 'middle' }, axis).textContent = xLabel;
  el('text', { x: M.left, y: 12 }, axis).textContent = yLabel + (logY ? ' (log scale)' : '');

  series.forEach((s, i) => {
    const cls = s.className ?? s.name;
    if (s.ci) {
      const bars = el('g', { class: `ci ${cls}`, 'data-ci': s.name }, svg);
      s.points.forEach(([x, y], j) => {
        const [top, bottom, cx] = [py(y + s.ci[j]), py(low(y, s.ci[j])), px(x) + (s.dodge ?? 0)];
        el('line', { class: `series ${cls}`, x1: cx, x2: cx, y1: top, y2: bottom }, bars);
        for (const end of [top, bottom]) el('line', { class: `series ${cls}`, x1: cx - 4, x2: cx + 4, y1: end, y2: end }, bars);
      });
    }
    if (s.kind === 'points') {
      const group = el('g', { 'data-series': s.name, 'data-points': s.points.length }, svg);
      for (const [x, y] of s.points) el('circle', { class: cls, cx: px(x), cy: py(y), r: 4 }, group);
    } else {
      const d = s.points.map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join('');
      el('path', { class: `series ${cls}`, d, 'data-series': s.name, 'data-points': s.points.length }, svg);
    }
    const ly = M.top + 14 + i * 18;
    if (s.kind === 'points') el('circle', { class: cls, cx: W - M.right + 20, cy: ly - 4, r: 4 }, svg);
    else el('line', { class: `series ${cls}`, x1: W - M.right + 10, x2: W - M.right + 30, y1: ly - 4, y2: ly - 4 }, svg);
    el('text', { x: W - M.right + 36, y: ly }, svg).textContent = s.label;
  });
}
