// A ggml pool thread of the threaded build (pkg-threads/), in a Node worker_thread or a Web
// Worker. Its host posts { glue, module, memory, crashChannel }; it instantiates the module on the engine's
// shared memory, takes a slot, says "ready" and parks in Rust, running ggml's thread bodies for
// the rest of its life. Hosts wait for every "ready" before any computation: pthread_create
// cannot start a worker while the engine thread blocks the event loop (vendor/ggml/src/threads.rs).
const node = typeof process === 'object' && Boolean(process.versions?.node);
const port = node ? (await import('node:worker_threads')).parentPort : self;

async function start({ glue, module, memory, crashChannel }) {
  const { initSync, threadRegister, threadPark } = await import(glue);
  initSync({ module, memory });
  const slot = threadRegister();
  port.postMessage('ready');
  try {
    threadPark(slot);
  } catch (e) {
    // A trap: the engine thread waits for this thread forever. Tell EchoEngine, which ends both.
    if (!crashChannel) throw e;
    const channel = new BroadcastChannel(crashChannel);
    channel.postMessage(`a ggml pool thread trapped: ${e?.message ?? e}`);
    channel.close();
  }
}

if (node) port.once('message', start);
else self.onmessage = (e) => start(e.data);
