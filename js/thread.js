// A ggml pool thread of the threaded build (pkg-threads/), in a Node worker_thread or a Web
// Worker. Its host posts { glue, module, memory, crashChannel, exitProcess }; it instantiates the module on the engine's
// shared memory, takes a slot, says "ready" and parks in Rust, running ggml's thread bodies for
// the rest of its life. Hosts wait for every "ready" before any computation: pthread_create
// cannot start a worker while the engine thread blocks the event loop (vendor/ggml/src/threads.rs).
const node = typeof process === 'object' && Boolean(process.versions?.node);
const port = node ? (await import('node:worker_threads')).parentPort : self;

async function start({ glue, module, memory, crashChannel, exitProcess }) {
  const { initSync, threadRegister, threadPark } = await import(glue);
  // Loaded now: once the thread traps, the thread computing may be waiting on it, and a
  // dynamic import's promise may never resolve.
  const { writeSync } = node && exitProcess ? await import('node:fs') : {};
  initSync({ module, memory });
  const slot = threadRegister();
  port.postMessage('ready');
  try {
    threadPark(slot);
  } catch (e) {
    // A trap: the thread computing waits for this one forever, deaf to messages.
    const message = `a ggml pool thread trapped: ${e?.message ?? e}`;
    if (crashChannel) {
      // EchoEngine hears it on its own thread and ends the engine's worker with this one.
      const channel = new BroadcastChannel(crashChannel);
      channel.postMessage(message);
      channel.close();
    } else if (exitProcess) {
      // The Node CLI computes on its main thread: say it in the CLI's error format and end the
      // process from here.
      writeSync(2, JSON.stringify({ code: 'worker_crashed', message }) + '\n');
      process.kill(process.pid, 'SIGTERM');
    } else {
      throw e;
    }
  }
}

if (node) port.once('message', start);
else self.onmessage = (e) => start(e.data);
