// Shared by the playground and the dashboard: the API key, fetch with it,
// number formatting, and a small canvas chart (no library, no network).

const keyInput = document.getElementById('api-key');
keyInput.value = localStorage.getItem('braid-api-key') ?? '';
keyInput.addEventListener('change', () => localStorage.setItem('braid-api-key', keyInput.value));

// The API key typed in the header ('' for none).
export function apiKey() {
  return keyInput.value;
}

// fetch() with the API key, when one is set, as a bearer token.
export function api(path, options = {}) {
  const headers = new Headers(options.headers ?? {});
  if (apiKey()) headers.set('Authorization', `Bearer ${apiKey()}`);
  return fetch(path, { ...options, headers });
}

export function formatMs(ms) {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

export const palette = ['#2f6fdf', '#1f9d55', '#d97706', '#8b5cf6', '#d64545', '#0891b2', '#be185d', '#4b5563'];

// Creates an element: el('div', {class: 'x'}, child, 'text', ...).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// The canvas sized to its box at the screen's pixel ratio; its 2D context
// (in CSS pixels) and size.
export function prepareCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  return { g, width, height };
}

// A line chart over time on a canvas: series of [x, y] points sharing one
// x range (seconds) and a y axis from 0.
export class LineChart {
  constructor(canvas, { unit = '', legend = null } = {}) {
    this.canvas = canvas;
    this.unit = unit;
    this.legend = legend;
  }

  draw(series, xMin, xMax) {
    const { g, width, height } = prepareCanvas(this.canvas);
    const left = 46, right = 8, top = 8, bottom = 18;
    let yMax = 0;
    for (const s of series) for (const [, y] of s.points) yMax = Math.max(yMax, y);
    yMax = niceCeiling(yMax || 1);
    const x = (v) => left + ((v - xMin) / Math.max(xMax - xMin, 1e-9)) * (width - left - right);
    const y = (v) => top + (1 - v / yMax) * (height - top - bottom);
    g.strokeStyle = '#d9dee7';
    g.fillStyle = '#667085';
    g.font = '11px system-ui, sans-serif';
    g.lineWidth = 1;
    for (let i = 0; i <= 4; ++i) {
      const v = (yMax * i) / 4;
      g.beginPath();
      g.moveTo(left, y(v));
      g.lineTo(width - right, y(v));
      g.stroke();
      g.fillText(formatNumber(v) + this.unit, 2, y(v) + 4);
    }
    g.fillText(`${Math.round(xMax - xMin)} s`, width - right - 30, height - 4);
    series.forEach((s, i) => {
      g.strokeStyle = s.color ?? palette[i % palette.length];
      g.lineWidth = 2;
      g.beginPath();
      s.points.forEach(([px, py], j) => (j ? g.lineTo(x(px), y(py)) : g.moveTo(x(px), y(py))));
      g.stroke();
      const last = s.points.at(-1);
      if (last) {
        g.fillStyle = g.strokeStyle;
        g.beginPath();
        g.arc(x(last[0]), y(last[1]), 2.5, 0, 2 * Math.PI);
        g.fill();
      }
    });
    if (this.legend) {
      this.legend.replaceChildren(...series.map((s, i) =>
        el('span', {}, el('i', { style: `background:${s.color ?? palette[i % palette.length]}` }), s.name)));
    }
  }
}

function niceCeiling(v) {
  const power = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= v) return step * power;
  return 10 * power;
}

export function formatNumber(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  if (v >= 10 || Number.isInteger(v)) return `${Math.round(v)}`;
  return v.toFixed(v >= 1 ? 1 : 2);
}
