// Where a model (or a vocabulary) comes from, as the worker reads it: one interface over a URL
// (fetch), a Blob or File, bytes, a ReadableStream and, in Node, a file path. Each yields the
// file as chunks, so the worker can hand them to the engine one by one and never hold the file;
// a file path is also read straight into the engine's memory (`readInto`).

/** Chunks of in-memory bytes and of files: big enough to amortise the call, small enough to copy. */
const CHUNK_BYTES = 1 << 20;
/**
 * A file goes into the engine's memory this much at a time, in pieces read at once (libuv's four
 * threads): 50 ms less than chunks copied in by the worker, for a 224 MB first load in Node.
 */
const READ_BYTES = 8 << 20;
const READ_PIECE = 2 << 20;

export function echoError(code, message, extra = {}) {
  return Object.assign(new Error(message), { name: 'EchoError', code, ...extra });
}

const aborted = () => echoError('aborted', 'loading was aborted');

/**
 * @param {{url?: string, blob?: Blob, bytes?: Uint8Array, stream?: ReadableStream, port?: MessagePort, path?: string}} spec
 * @param {AbortSignal} signal
 * @returns {Promise<{total: number|undefined, chunks(): AsyncIterable<Uint8Array>, cancel(): Promise<void>}>}
 */
export async function openSource(spec, signal) {
  if (spec.url !== undefined) return openUrl(spec.url, signal);
  if (spec.blob !== undefined) return fromStream(spec.blob.stream(), spec.blob.size, signal, 'the Blob');
  if (spec.stream !== undefined) return fromStream(spec.stream, undefined, signal, 'the stream');
  if (spec.port !== undefined) return fromStream(portStream(spec.port), undefined, signal, 'the stream');
  if (spec.bytes !== undefined) return fromBytes(spec.bytes);
  if (spec.path !== undefined) return openPath(spec.path, signal);
  throw echoError('invalid_options', 'unknown source');
}

async function openUrl(url, signal) {
  let res;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    if (signal.aborted) throw aborted();
    throw echoError('load_failed', `could not fetch ${url} (${e.message}); check the address and the network`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw echoError('load_failed', `fetching ${url} failed with HTTP ${res.status} ${res.statusText}; check the address`, {
      status: res.status,
    });
  }
  // With a content encoding, Content-Length counts the compressed bytes, not the file's.
  const length = res.headers.get('content-encoding') ? null : res.headers.get('content-length');
  return fromStream(res.body, length === null ? undefined : Number(length), signal, url);
}

function fromStream(stream, total, signal, what) {
  const reader = stream.getReader();
  const cancel = () => reader.cancel().catch(() => {});
  // A read waiting on a stalled network ends as soon as the caller aborts.
  signal.addEventListener('abort', cancel, { once: true });
  return {
    total,
    cancel,
    async *chunks() {
      for (;;) {
        let r;
        try {
          r = await reader.read();
        } catch (e) {
          if (signal.aborted) throw aborted();
          throw echoError('load_failed', `reading ${what} failed (${e.message}); retry, or check the source`);
        }
        if (signal.aborted) throw aborted();
        if (r.done) return;
        if (!(r.value instanceof Uint8Array)) throw echoError('invalid_options', `${what} must yield Uint8Array chunks`);
        yield r.value;
      }
    },
  };
}

/**
 * The page's stream, read over `port` where streams cannot be transferred (echo-engine.js
 * `serveStream`): each read asks the page for one chunk; a cancel goes back to the page.
 */
function portStream(port) {
  const replies = [];
  port.onmessage = ({ data }) => replies.shift()?.(data);
  return new ReadableStream({
    async pull(controller) {
      const r = await new Promise((ok) => {
        replies.push(ok);
        port.postMessage('pull');
      });
      if (r.error !== undefined) controller.error(new Error(r.error));
      else if (r.done) {
        controller.close();
        port.close();
      } else controller.enqueue(r.chunk);
    },
    cancel() {
      port.postMessage('cancel');
      port.close();
    },
  }, { highWaterMark: 0 });
}

function fromBytes(bytes) {
  return {
    total: bytes.byteLength,
    cancel: async () => {},
    async *chunks() {
      for (let at = 0; at < bytes.byteLength; at += CHUNK_BYTES) yield bytes.subarray(at, at + CHUNK_BYTES);
    },
  };
}

async function openPath(path, signal) {
  const { open } = await import('node:fs/promises');
  let file;
  try {
    file = await open(path, 'r');
  } catch (e) {
    throw echoError('load_failed', `cannot open '${path}' (${e.code ?? e.message}); check the path`);
  }
  let size;
  try {
    ({ size } = await file.stat());
  } catch (e) {
    await file.close();
    throw echoError('load_failed', `cannot read '${path}' (${e.code ?? e.message})`);
  }
  let closed = false;
  const cancel = async () => {
    if (!closed) {
      closed = true;
      await file.close();
    }
  };
  let position = 0;
  return {
    total: size,
    cancel,
    /**
     * Reads the file's next bytes into `view` (up to `READ_BYTES`): the caller's memory, so they
     * are copied once. Returns how many; 0 at the end, where the file is closed.
     */
    async readInto(view) {
      const pieces = [];
      for (let at = 0; at < Math.min(view.byteLength, READ_BYTES); at += READ_PIECE) {
        pieces.push(view.subarray(at, Math.min(at + READ_PIECE, READ_BYTES)));
      }
      // Every read settles before this returns or throws: none may write into the memory after
      // the caller has let it go.
      const reads = await Promise.allSettled(pieces.map((piece, i) => readAt(file, path, piece, position + i * READ_PIECE, signal)));
      const failed = reads.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      // Bytes count up to the first short piece: the end of the file.
      let n = 0;
      for (const [i, { value }] of reads.entries()) {
        n += value;
        if (value < pieces[i].byteLength) break;
      }
      position += n;
      if (n === 0) await cancel();
      return n;
    },
    async *chunks() {
      // One buffer, reused: the engine copies each chunk before the next read.
      const buf = new Uint8Array(CHUNK_BYTES);
      try {
        for (;;) {
          if (signal.aborted) throw aborted();
          let bytesRead;
          try {
            ({ bytesRead } = await file.read(buf, 0, buf.byteLength, null));
          } catch (e) {
            throw echoError('load_failed', `reading '${path}' failed (${e.code ?? e.message})`);
          }
          if (bytesRead === 0) return;
          yield buf.subarray(0, bytesRead);
        }
      } finally {
        await cancel();
      }
    },
  };
}

/**
 * Reads a Node file from offset `at` into `view` until it is full or the file ends; returns how
 * many bytes came.
 */
async function readAt(file, path, view, at, signal) {
  let n = 0;
  while (n < view.byteLength) {
    if (signal.aborted) throw aborted();
    let bytesRead;
    try {
      ({ bytesRead } = await file.read(view, n, view.byteLength - n, at + n));
    } catch (e) {
      throw echoError('load_failed', `reading '${path}' failed (${e.code ?? e.message})`);
    }
    if (bytesRead === 0) break;
    n += bytesRead;
  }
  return n;
}

/**
 * The whole source in one buffer (vocabulary files: a few MB). Each chunk is copied once, into a
 * buffer of the source's size when known (chunks may be reused by the source, so they are copied).
 */
export async function readAll(src) {
  let out = new Uint8Array(src.total ?? 0);
  let n = 0;
  for await (const chunk of src.chunks()) {
    if (n + chunk.byteLength > out.byteLength) {
      const grown = new Uint8Array(Math.max(2 * out.byteLength, n + chunk.byteLength));
      grown.set(out.subarray(0, n));
      out = grown;
    }
    out.set(chunk, n);
    n += chunk.byteLength;
  }
  return out.subarray(0, n);
}

/**
 * A source read at offsets, as the checkpoint converter asks: a Blob (sliced), bytes, or in Node a
 * file path. A URL or a stream is read into a Blob first (browsers keep large Blobs on disk).
 * @returns {Promise<{size: number, read(offset: number, length: number): Promise<Uint8Array>, close(): Promise<void>}>}
 */
export async function openRandomAccess(spec, signal) {
  const failed = (what, e) => echoError('load_failed', `reading ${what} failed (${e.message}); retry, or check the source`);
  if (spec.url !== undefined || spec.stream !== undefined || spec.port !== undefined) {
    const src = await openSource(spec, signal);
    const parts = [];
    for await (const chunk of src.chunks()) parts.push(chunk.slice());
    return openRandomAccess({ blob: new Blob(parts) }, signal);
  }
  if (spec.blob !== undefined) {
    const blob = spec.blob;
    return {
      size: blob.size,
      read: async (offset, length) => {
        try {
          return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
        } catch (e) {
          throw failed('the Blob', e);
        }
      },
      close: async () => {},
    };
  }
  if (spec.bytes !== undefined) {
    const bytes = spec.bytes;
    return { size: bytes.byteLength, read: async (offset, length) => bytes.subarray(offset, offset + length), close: async () => {} };
  }
  if (spec.path !== undefined) {
    const { open } = await import('node:fs/promises');
    let file;
    try {
      file = await open(spec.path, 'r');
    } catch (e) {
      throw echoError('load_failed', `cannot open '${spec.path}' (${e.code ?? e.message}); check the path`);
    }
    const { size } = await file.stat();
    return {
      size,
      read: async (offset, length) => {
        const buf = new Uint8Array(length);
        if ((await readAt(file, spec.path, buf, offset, signal)) < length) {
          throw echoError('load_failed', `'${spec.path}' ended early (it is shorter than it was)`);
        }
        return buf;
      },
      close: () => file.close(),
    };
  }
  throw echoError('invalid_options', 'unknown source');
}
