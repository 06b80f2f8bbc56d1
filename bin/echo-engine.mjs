#!/usr/bin/env node
// The echo-engine CLI on Node.js: runs the wasm build (pkg/) with Node's file system; with
// `--threads N` above 1, the threaded build (pkg-threads/) with N-1 parked pool threads.
// Same commands and output as the native binary; see `echo-engine` without arguments.
import { openSync, readSync, writeSync, closeSync, fstatSync, fsyncSync, renameSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { instantiate, startPool } from '../js/builds.js';

const args = process.argv.slice(2);
const threadsAt = args.indexOf('--threads');
// The Rust side parses and checks the value; here it only picks the build.
const threads = threadsAt >= 0 ? Number(args[threadsAt + 1]) : 1;
const dir = threads > 1 ? '../pkg-threads/' : '../pkg/';
// `dir` is relative to js/builds.js, a sibling of this folder.
const wasmPath = fileURLToPath(new URL(`${dir}echo_engine_bg.wasm`, import.meta.url));
if (!existsSync(wasmPath)) {
  // A checkout that was never built: say how, in the CLI's error format.
  const message = `the wasm build is missing (${wasmPath}): run ./build-wasm.sh in the echo-engine repository`;
  process.stderr.write(JSON.stringify({ code: 'load_failed', message }) + '\n');
  process.exit(1);
}
const build = await instantiate(dir);
if (threads > 1 && threads <= 64) await startPool(build, threads - 1, { exitProcess: true });

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

const code = build.runCli(args, io);
for (const fd of [...[...readers.values()].map((r) => r.fd), ...writers.values()]) closeSync(fd);
process.exitCode = code;
