// The dashboard: polls /dashboard/stats every second and charts what changed
// between polls over the last minute. The server's figures are cumulative;
// rates, percentiles and ratios are computed here from their differences.
import { api, el, formatMs, formatNumber, LineChart, palette, prepareCanvas } from './common.js';

const kHistorySeconds = 60;
const samples = [];  // {stats, at}
const chart = (name, unit) =>
  new LineChart(document.getElementById(`chart-${name}`), { unit, legend: document.getElementById(`legend-${name}`) });
const charts = {
  throughput: chart('throughput', ''),
  latency: chart('latency', ' ms'),
  queue: chart('queue', ''),
  cache: chart('cache', '%'),
  instances: chart('instances', ''),
  compute: chart('compute', ''),
};

const key = (m) => `${m.name}/${m.version}`;
const byModel = (stats) => new Map(stats.models.map((m) => [key(m), m]));
const sum = (values) => values.reduce((a, b) => a + b, 0);

// The q-quantile of the requests between two cumulative histograms,
// interpolated inside its bucket as Prometheus's histogram_quantile does.
function quantile(q, before, after) {
  const count = after.count - before.count;
  if (count <= 0) return null;
  const rank = q * count;
  let previousBound = 0, previousCount = 0;
  for (let b = 0; b < after.bounds_s.length; ++b) {
    const inBucket = after.cumulative[b] - before.cumulative[b];
    if (inBucket >= rank) {
      const share = (rank - previousCount) / Math.max(inBucket - previousCount, 1);
      return (previousBound + share * (after.bounds_s[b] - previousBound)) * 1000;
    }
    previousBound = after.bounds_s[b];
    previousCount = inBucket;
  }
  return previousBound * 1000;
}

function cacheCounts(stats) {
  const tiers = [stats.cache?.memory, stats.cache?.redis].filter(Boolean);
  return { hits: sum(tiers.map((t) => t.hits)), misses: sum(tiers.map((t) => t.misses)) };
}

// Per-interval figures between consecutive samples.
function interval(previous, next) {
  const seconds = next.stats.time_s - previous.stats.time_s;
  const before = byModel(previous.stats);
  const rates = new Map();
  for (const m of next.stats.models) {
    const old = before.get(key(m));
    rates.set(key(m), old ? Math.max(0, m.success - old.success) / seconds : 0);
  }
  const cacheBefore = cacheCounts(previous.stats), cacheAfter = cacheCounts(next.stats);
  const lookups = cacheAfter.hits + cacheAfter.misses - cacheBefore.hits - cacheBefore.misses;
  // The share of `part` among `counts` of cache.`group` over the interval; null when none.
  const share = (group, part, counts) => {
    const before = previous.stats.cache?.[group], after = next.stats.cache?.[group];
    if (!before || !after) return null;
    const all = sum(counts.map((c) => after[c] - before[c]));
    return all > 0 ? ((after[part] - before[part]) / all) * 100 : null;
  };
  return {
    at: next.at,
    rates,
    total: sum([...rates.values()]),
    p50: quantile(0.5, previous.stats.latency, next.stats.latency),
    p95: quantile(0.95, previous.stats.latency, next.stats.latency),
    p99: quantile(0.99, previous.stats.latency, next.stats.latency),
    hitRatio: lookups > 0 ? ((cacheAfter.hits - cacheBefore.hits) / lookups) * 100 : null,
    // Image keys an earlier near duplicate gave, texts their canonical form
    // changed, semantic lookups answered.
    nearDuplicates: share('images', 'perceptual', ['exact', 'perceptual', 'new']),
    respelled: share('texts', 'normalized', ['normalized', 'as_sent']),
    semantic: share('semantic', 'hits', ['hits', 'misses']),
  };
}

function render() {
  const now = samples.at(-1);
  const intervals = samples.slice(1).map((s, i) => interval(samples[i], s));
  const last = intervals.at(-1);
  const xMin = now.at - kHistorySeconds, xMax = now.at;
  const models = now.stats.models;
  const points = (f) => intervals.map((i) => [i.at, f(i)]).filter(([, v]) => v !== null);

  // Each figure carries its number in data-value as well as its text.
  const figure = (id, value, format) => {
    const node = document.getElementById(id);
    node.textContent = value == null ? '–' : format(value);
    node.dataset.value = value ?? '';
  };
  figure('throughput', last?.total, formatNumber);
  figure('p50', last?.p50, formatMs);
  figure('p99', last?.p99, formatMs);
  figure('in-flight', now.stats.in_flight, String);
  figure('hit-ratio', last?.hitRatio, (v) => `${v.toFixed(0)}%`);
  const first = byModel(samples[0].stats);
  figure('served', sum(models.map((m) => m.success - (first.get(key(m))?.success ?? 0))), formatNumber);

  const active = models.filter((m) => m.success > 0 || m.instances > 0);
  charts.throughput.draw([{ name: 'all', color: '#1d2330', points: points((i) => i.total) },
    ...active.filter((m) => intervals.some((i) => i.rates.get(key(m)) > 0))
      .map((m) => ({ name: m.name, points: points((i) => i.rates.get(key(m)) ?? 0) }))], xMin, xMax);
  charts.latency.draw([
    { name: 'p50', points: points((i) => i.p50) },
    { name: 'p95', points: points((i) => i.p95) },
    { name: 'p99', points: points((i) => i.p99) }], xMin, xMax);
  const levels = Math.max(0, ...models.map((m) => m.queue_depth.length));
  charts.queue.draw(Array.from({ length: levels }, (_, level) => ({
    name: `priority ${level + 1}`,
    points: samples.map((s) => [s.at, sum(s.stats.models.map((m) => m.queue_depth[level] ?? 0))]),
  })), xMin, xMax);
  const tiers = [['nearDuplicates', 'near-duplicate images / image keys'],
    ['respelled', 'respelled texts / text keys'], ['semantic', 'semantic hits / lookups']]
    .filter(([field]) => intervals.some((i) => i[field] !== null))
    .map(([field, name]) => ({ name, points: points((i) => i[field]) }));
  charts.cache.draw(now.stats.cache
    ? [{ name: 'hits / lookups', points: points((i) => i.hitRatio) }, ...tiers] : [], xMin, xMax);
  charts.instances.draw(active.map((m) => ({
    name: m.name,
    points: samples.map((s) => [s.at, byModel(s.stats).get(key(m))?.instances ?? 0]),
  })), xMin, xMax);
  drawCompute(now.stats.compute, xMin, xMax);
  drawBatches(models);
  renderTable(models, last);
}

// Leases of the compute budget in use per model and class, and how often
// priority 1 started beside lower work instead of waiting.
function drawCompute(compute, xMin, xMax) {
  if (!compute) return;
  document.getElementById('compute-summary').textContent =
    `(${compute.threads} threads, ${compute.preemptions} preemptions)`;
  const series = [];
  for (const [cls, index] of [['interactive', 0], ['background', 1]]) {
    const names = new Set(samples.flatMap((s) => Object.keys(s.stats.compute?.models ?? {})));
    for (const name of names) {
      const points = samples.map((s) => [s.at, s.stats.compute?.models?.[name]?.[index] ?? 0]);
      if (points.some(([, v]) => v > 0)) series.push({ name: `${name} (${cls})`, points });
    }
  }
  charts.compute.draw(series, xMin, xMax);
}

// Batches of each size over the last 10 s, summed over models; bars.
function drawBatches(models) {
  const canvas = document.getElementById('chart-batches');
  const old = byModel(samples[Math.max(0, samples.length - 11)].stats);
  const counts = [];
  for (const m of models) {
    const before = old.get(key(m))?.batch_sizes ?? [];
    m.batch_sizes.forEach((n, size) => { counts[size] = (counts[size] ?? 0) + n - (before[size] ?? 0); });
  }
  const { g, width, height } = prepareCanvas(canvas);
  const sizes = Math.max(2, counts.length);
  const most = Math.max(1, ...counts.filter(Boolean));
  const slot = (width - 20) / (sizes - 1);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#667085';
  for (let size = 1; size < sizes; ++size) {
    const n = counts[size] ?? 0;
    const x = 10 + (size - 1) * slot, barHeight = (n / most) * (height - 36);
    g.fillStyle = palette[0];
    g.fillRect(x + slot * 0.15, height - 18 - barHeight, slot * 0.7, barHeight);
    g.fillStyle = '#667085';
    g.fillText(String(size), x + slot * 0.4, height - 4);
    if (n) g.fillText(formatNumber(n), x + slot * 0.3, height - 22 - barHeight);
  }
  document.getElementById('legend-batches').textContent =
    `batches by size; ${formatNumber(sum(counts.filter(Boolean)))} in the window`;
}

function renderTable(models, last) {
  const cell = (value, text = formatNumber(value)) => el('td', { 'data-value': value }, text);
  document.getElementById('models').replaceChildren(...models.map((m) => el('tr', { 'data-model': m.name },
    el('td', {}, m.name), cell(m.version, String(m.version)), cell(m.instances, String(m.instances)),
    cell(last?.rates.get(key(m)) ?? 0), cell(m.success), cell(m.rejected), cell(m.timed_out),
    cell(sum(m.queue_depth)),
    cell(m.executions ? m.inferences / m.executions : 0, m.executions ? (m.inferences / m.executions).toFixed(1) : '–'),
    cell(m.utilization, `${Math.round(m.utilization * 100)}%`))));
}

async function poll() {
  const status = document.getElementById('updated');
  try {
    const response = await api('/dashboard/stats');
    const stats = await response.json();
    if (!response.ok) throw new Error(stats.error ?? `HTTP ${response.status}`);
    samples.push({ stats, at: stats.time_s });
    while (samples.length > kHistorySeconds + 1) samples.shift();
    status.textContent = 'live';
    status.classList.remove('error');
    render();
  } catch (error) {
    status.textContent = error.message;
    status.classList.add('error');
  }
}

poll();
setInterval(poll, 1000);
