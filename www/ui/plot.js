// A small line plot of tokens per second per request (prompt and decode) on a canvas. Colours come
// from the canvas's CSS custom properties, so the plot follows the light or dark scheme.

const PAD = { left: 40, right: 8, top: 8, bottom: 18 };

/** @param {HTMLCanvasElement} canvas @param {{ prompt: number, decode: number }[]} points */
export function drawSpeeds(canvas, points) {
  const css = getComputedStyle(canvas);
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  // Sharp on high-density screens: the backing store follows the device pixel ratio.
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);

  const top = niceCeiling(Math.max(1, ...points.flatMap((p) => [p.prompt, p.decode])));
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (points.length < 2 ? plotW / 2 : (i / (points.length - 1)) * plotW);
  const y = (v) => PAD.top + plotH - (v / top) * plotH;

  g.strokeStyle = css.getPropertyValue('--plot-grid').trim() || '#888';
  g.fillStyle = css.getPropertyValue('--plot-text').trim() || '#444';
  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (const v of [0, top / 2, top]) {
    g.beginPath();
    g.moveTo(PAD.left, y(v));
    g.lineTo(width - PAD.right, y(v));
    g.stroke();
    g.fillText(String(Math.round(v)), PAD.left - 4, y(v));
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  if (points.length) g.fillText(points.length === 1 ? 'request 1' : `requests 1–${points.length}`, PAD.left + plotW / 2, height - PAD.bottom + 4);

  for (const [key, colour] of [['prompt', '--plot-prompt'], ['decode', '--plot-decode']]) {
    g.strokeStyle = g.fillStyle = css.getPropertyValue(colour).trim() || '#36c';
    g.lineWidth = 2;
    g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(x(i), y(p[key])) : g.moveTo(x(i), y(p[key]))));
    g.stroke();
    points.forEach((p, i) => {
      g.beginPath();
      g.arc(x(i), y(p[key]), 2.5, 0, Math.PI * 2);
      g.fill();
    });
  }
}

/** 1, 2 or 5 times a power of ten, at least `v`: round axis labels. */
function niceCeiling(v) {
  const base = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * base).find((c) => c >= v);
}
