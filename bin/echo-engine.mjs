#!/usr/bin/env node
// The echo-engine CLI on Node.js: runs the wasm build (pkg/) with Node's file system.
// Same commands and output as the native binary; see `echo-engine` without arguments.
import { openSync, readSync, writeSync, closeSync, fstatSync, fsyncSync, renameSync, readFileSync, existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const wasmPath = fileURLToPath(new URL('../pkg/echo_engine_bg.wasm', import.meta.url));
if (!existsSync(wasmPath)) {
  // A checkout that was never built: say how, in the CLI's error format.
  const message = `the wasm build is missing (${wasmPath}): run ./build-wasm.sh in the echo-engine repository`;
  process.stderr.write(JSON.stringify({ code: 'load_failed', message }) + '\n');
  process.exit(1);
}
const { default: init, runCli } = await import('../pkg/echo_engine.js');
await init({ module_or_path: readFileSync(wasmPath) });

const readers = new Map();
const writers = new Map();
const io = {
  open(path) {
    const fd = openSync(path, 'r');
    readers.set(path, { fd, pos: 0 });
    return fstatSync(fd).size;
  },
  read(path, into) {
    const r = readers.get(path);
    const n = readSync(r.fd, into, 0, into.length, r.pos);
    r.pos += n;
    return n;
  },
  seek(path, offset) {
    readers.get(path).pos = offset;
  },
  create(path) {
    writers.set(path, openSync(path, 'w'));
  },
  append(path, bytes) {
    writeSync(writers.get(path), bytes);
  },
  rename(from, to) {
    const fd = writers.get(from);
    if (fd !== undefined) {
      fsyncSync(fd);
      closeSync(fd);
      writers.delete(from);
    }
    renameSync(from, to);
  },
  exists: (path) => existsSync(path),
  stdout(line) { process.stdout.write(line + '\n'); },
  stdoutRaw(text) { process.stdout.write(text); },
  stderr(line) { process.stderr.write(line + '\n'); },
  runtime: () => 'node',
};

const code = runCli(process.argv.slice(2), io);
for (const fd of [...[...readers.values()].map((r) => r.fd), ...writers.values()]) closeSync(fd);
process.exitCode = code;
