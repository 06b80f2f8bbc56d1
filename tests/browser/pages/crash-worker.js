// A stand-in worker (browser or Node) that accepts `create` and then dies on the next request,
// as a worker that runs out of memory or hits a bug would: tests that `EchoEngine` then rejects
// with `worker_crashed`.
const node = typeof self === 'undefined' ? (await import('node:worker_threads')).parentPort : null;
const post = (msg) => (node ? node.postMessage(msg) : self.postMessage(msg));
const onMessage = (data) => {
  if (data.op === 'create') post({ id: data.id, ok: true });
  else setTimeout(() => { throw new Error('simulated crash'); });
};
if (node) node.on('message', onMessage);
else self.onmessage = (e) => onMessage(e.data);
