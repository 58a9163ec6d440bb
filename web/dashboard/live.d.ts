// Types of live.js for the unit test that imports it (the page itself runs the plain JavaScript).
export function liveCurve(scores: readonly number[]): [number, number][];
export function formatLive(window: { metric: 'accuracy' | 'mse'; value: number | null; scored: number }): string;
