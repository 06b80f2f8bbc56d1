// A tiny static file server for the browser tests: serves the repository (the package's js/ and
// pkg/, the test pages) and folders mounted under a prefix (generated models, fixtures), with or
// without the cross-origin isolation headers WebVM pages use, and counts the bytes of file data
// it hands to each request, so a test can show a refused model was not downloaded.
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * @param {{ root: string, mounts?: Record<string, string>, isolated?: boolean }} options
 *   mounts: URL prefix ('/models/') → folder.
 */
export async function startServer({ root, mounts = {}, isolated = false }) {
  /** URL path → bytes of file data handed to the socket, summed over requests. */
  const sent = new Map();
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (isolated) {
      res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
      res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    }
    res.setHeader('Cache-Control', 'no-store');
    const file = resolve(root, mounts, path);
    let size;
    try {
      const st = file && statSync(file);
      size = st && st.isFile() ? st.size : undefined;
    } catch {
      size = undefined;
    }
    if (size === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': size });
    const stream = createReadStream(file, { highWaterMark: 64 * 1024 });
    stream.on('data', (chunk) => sent.set(path, (sent.get(path) ?? 0) + chunk.length));
    stream.pipe(res);
    // A client that stops reading (a cancelled download) ends the file stream too.
    res.on('close', () => stream.destroy());
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** Bytes of `path` sent so far. */
    sentBytes: (path) => sent.get(path) ?? 0,
    close: () => new Promise((ok) => {
      server.closeAllConnections();
      server.close(ok);
    }),
  };
}

/** The file for a URL path, or null if it would leave its folder. */
function resolve(root, mounts, path) {
  for (const [prefix, dir] of Object.entries(mounts)) {
    if (path.startsWith(prefix)) return inside(dir, path.slice(prefix.length));
  }
  return inside(root, path.slice(1));
}

function inside(dir, rel) {
  const full = normalize(join(dir, rel));
  return full.startsWith(normalize(dir + sep)) ? full : null;
}
