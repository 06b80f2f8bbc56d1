// scripts/browser-cli.mjs's command, in a module worker of its page, as the engine runs in a
// worker (and must: ggml's threads wait with wasm's atomic wait, which a page may not). Takes
// { args, files, runtime, crashChannel } (files: each file argument → its URL; crashChannel: where
// a pool thread that traps says so), fetches the files whole (the CLI reads synchronously), runs
// the CLI and posts { code, stdout, stderr }.
import { instantiate, startPool } from '../js/builds.js';

self.onmessage = async ({ data: { args, files, runtime, crashChannel } }) => {
  const at = args.indexOf('--threads');
  const threads = at >= 0 ? Number(args[at + 1]) : 1;
  const build = await instantiate(threads > 1 ? '../pkg-threads/' : '../pkg/');
  if (threads > 1 && threads <= 64) await startPool(build, threads - 1, { crashChannel });
  const contents = new Map();
  for (const [path, url] of Object.entries(files)) {
    const response = await fetch(url);
    contents.set(path, new Uint8Array(await response.arrayBuffer()));
  }
  const offsets = new Map();
  let stdout = '';
  let stderr = '';
  const io = {
    open(path) {
      if (!contents.has(path)) throw new Error('only the files named by --model, --vocab, --file, --json-schema, --lark, --gbnf and --memory-path can be read in the browser');
      offsets.set(path, 0);
      return contents.get(path).length;
    },
    seek(path, offset) {
      offsets.set(path, offset);
    },
    read(path, into) {
      const at = offsets.get(path);
      const chunk = contents.get(path).subarray(at, at + into.length);
      into.set(chunk);
      offsets.set(path, at + chunk.length);
      return chunk.length;
    },
    create() {
      throw new Error('commands that write files are not run in the browser');
    },
    append() {
      throw new Error('commands that write files are not run in the browser');
    },
    rename() {
      throw new Error('commands that write files are not run in the browser');
    },
    exists: (path) => contents.has(path),
    stdout(line) { stdout += line + '\n'; },
    stdoutRaw(text) { stdout += text; },
    stderr(line) { stderr += line + '\n'; },
    runtime: () => runtime,
  };
  const code = build.runCli(args, io);
  self.postMessage({ code, stdout, stderr });
};
