#!/usr/bin/env node
// The one static server. By default the demo: www/ at /, the package's js/, pkg/ and
// pkg-threads/ at /js/, /pkg/ and /pkg-threads/ (siblings, as js/builds.js imports ../pkg/),
// under a strict Content-Security-Policy. With `root`, that folder as it is at /, without the
// CSP: so the browser tests and scripts/browser-cli.mjs serve the repository (test pages, js/,
// pkg/, scripts/), and package.test.mjs an installed app. Either way: cross-origin isolation when asked (COOP/COEP,
// and CORP on every file), folders mounted under URL prefixes, no caching, and the file bytes sent
// per path counted, so a test can prove a model was not downloaded (or a download stopped).
// `npm start` runs this file: the demo, isolated unless --no-isolation or ISOLATED=0, on port 8080
// (PORT); it builds pkg/ first if the wasm is missing.
import { createServer } from 'node:http';
import { Transform } from 'node:stream';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../', import.meta.url));

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.md': 'text/markdown; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

const CSP = [
  "default-src 'self'",
  // wasm compilation needs 'wasm-unsafe-eval'; no eval, no inline script.
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/**
 * @param {{ port?: number, isolated?: boolean, root?: string, mounts?: Record<string, string>,
 *   slow?: Record<string, number> }} options
 *   port: 0 for any free one; root: a folder to serve as it is instead of the demo; mounts: more
 *   URL prefixes ('/models/') → folders, checked first; slow: URL paths sent at that many bytes a
 *   second (a slow network, the same for every browser).
 */
export async function startServer({ port = 0, isolated = false, root, mounts = {}, slow = {} } = {}) {
  const site = root === undefined
    ? [['/js/', join(REPO, 'js')], ['/pkg/', join(REPO, 'pkg')], ['/pkg-threads/', join(REPO, 'pkg-threads')], ['/', join(REPO, 'www')]]
    : [['/', root]];
  const routes = [...Object.entries(mounts), ...site];
  /** URL path → file bytes handed to the socket, summed over requests. */
  const sent = new Map();
  const server = createServer((req, res) => {
    if (root === undefined) res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (isolated) for (const [k, v] of Object.entries(ISOLATION)) res.setHeader(k, v);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed');
      return;
    }
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400, { 'Content-Type': 'text/plain' }).end('bad path');
      return;
    }
    const file = fileFor(routes, path);
    const size = file ? fileSize(file) : undefined;
    if (size === undefined) {
      res.writeHead(file === null ? 403 : 404, { 'Content-Type': 'text/plain' }).end(file === null ? 'forbidden' : 'not found');
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': size,
      // Every load is a download: a test counting the bytes sent must never meet a cached copy.
      'Cache-Control': 'no-store',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const rate = slow[path];
    const stream = createReadStream(file, { highWaterMark: rate ? Math.ceil(rate / 10) : 64 * 1024 });
    stream.on('data', (chunk) => sent.set(path, (sent.get(path) ?? 0) + chunk.length));
    // A slow path goes out a tenth of its rate every 100 ms (the pipes' back-pressure holds the
    // file read to that pace too).
    const out = rate ? stream.pipe(new Transform({ transform: (chunk, _, done) => setTimeout(done, 100, null, chunk) })) : stream;
    out.pipe(res);
    // A client that stops reading (a cancelled or refused download) stops the file read too.
    res.on('close', () => {
      stream.destroy();
      out.destroy();
    });
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', ok);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    sentBytes: (path) => sent.get(path) ?? 0,
    close: () => new Promise((ok) => {
      server.closeAllConnections();
      server.close(ok);
    }),
  };
}

/** The file for a URL path: undefined when no route has it, null when it would leave its folder. */
function fileFor(routes, path) {
  for (const [prefix, dir] of routes) {
    if (!path.startsWith(prefix)) continue;
    const rel = path.slice(prefix.length);
    const full = normalize(join(dir, rel === '' || rel.endsWith('/') ? rel + 'index.html' : rel));
    return full.startsWith(normalize(dir + sep)) ? full : null;
  }
  return undefined;
}

function fileSize(file) {
  try {
    const st = statSync(file);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) {
  if (!existsSync(join(REPO, 'pkg/echo_engine_bg.wasm'))) {
    console.log('pkg/echo_engine_bg.wasm is missing: building it (./build-wasm.sh)…');
    execFileSync(join(REPO, 'build-wasm.sh'), { stdio: 'inherit', cwd: REPO });
  }
  const isolated = !process.argv.includes('--no-isolation') && process.env.ISOLATED !== '0';
  const server = await startServer({ port: Number(process.env.PORT ?? 8080), isolated });
  console.log(`Echo Engine demo: ${server.url}/ (${isolated ? 'cross-origin isolated' : 'not isolated'})`);
}
