/**
 * A tiny SVG line-plot writer for the demo's adaptation figure (after Figure 2 of the MAML paper):
 * side-by-side panels sharing axes, each with curves (solid or dashed) and marked points, and one
 * legend. No dependencies: the demo stays runnable offline.
 */

export interface Series {
  label: string;
  color: string;
  points: ReadonlyArray<readonly [number, number]>;
  /** 'line' (default), 'dashed' line, or 'markers' (unconnected points). */
  style?: 'line' | 'dashed' | 'markers';
}

export interface Panel {
  title: string;
  series: readonly Series[];
}

export interface FigureOptions {
  xRange: readonly [number, number];
  yRange: readonly [number, number];
  /** One panel's size in px. Default 360 x 260. */
  width?: number;
  height?: number;
}

const MARGIN = { left: 36, right: 12, top: 28, bottom: 28 };

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function ticks([lo, hi]: readonly [number, number]): number[] {
  const step = (hi - lo) / 4;
  return Array.from({ length: 5 }, (_, i) => lo + i * step);
}

/** The figure as an SVG document. */
export function figureSvg(panels: readonly Panel[], options: FigureOptions): string {
  const { xRange, yRange, width = 360, height = 260 } = options;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const legendH = 28;
  const sx = (x: number) => MARGIN.left + ((x - xRange[0]) / (xRange[1] - xRange[0])) * plotW;
  const sy = (y: number) => MARGIN.top + (1 - (Math.min(Math.max(y, yRange[0]), yRange[1]) - yRange[0]) / (yRange[1] - yRange[0])) * plotH;
  const parts: string[] = [];
  panels.forEach((panel, p) => {
    const g: string[] = [`<g transform="translate(${p * width},0)">`];
    g.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="#fff" stroke="#999"/>`);
    g.push(`<text x="${MARGIN.left + plotW / 2}" y="${MARGIN.top - 10}" text-anchor="middle" font-size="13">${escape(panel.title)}</text>`);
    for (const x of ticks(xRange)) g.push(`<text x="${sx(x).toFixed(1)}" y="${height - 10}" text-anchor="middle" font-size="10" fill="#555">${x}</text>`);
    for (const y of ticks(yRange)) {
      g.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#eee"/>`);
      g.push(`<text x="${MARGIN.left - 4}" y="${(sy(y) + 3).toFixed(1)}" text-anchor="end" font-size="10" fill="#555">${y}</text>`);
    }
    for (const s of panel.series) {
      if (s.style === 'markers') {
        for (const [x, y] of s.points) g.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="4" fill="${s.color}" stroke="#000" stroke-width="0.5"/>`);
      } else {
        const d = s.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
        g.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.style === 'dashed' ? ' stroke-dasharray="6 4"' : ''}/>`);
      }
    }
    g.push('</g>');
    parts.push(g.join(''));
  });
  const legend = (panels[0]?.series ?? []).map((s, i) => {
    const x = MARGIN.left + i * 190;
    const y = height + 14;
    const mark = s.style === 'markers'
      ? `<circle cx="${x + 10}" cy="${y}" r="4" fill="${s.color}" stroke="#000" stroke-width="0.5"/>`
      : `<line x1="${x}" x2="${x + 22}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.style === 'dashed' ? ' stroke-dasharray="6 4"' : ''}/>`;
    return `${mark}<text x="${x + 28}" y="${y + 4}" font-size="12">${escape(s.label)}</text>`;
  });
  const totalW = Math.max(1, panels.length) * width;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${height + legendH}" viewBox="0 0 ${totalW} ${height + legendH}" font-family="sans-serif">`
    + `<rect width="100%" height="100%" fill="#fafafa"/>${parts.join('')}${legend.join('')}</svg>\n`;
}
