// The engine's worker (Node) with pool threads that hang ggml, then trap (trapping-threads.mjs).
// Used by tests/node/threads.test.mjs.
import './trapping-threads.mjs';

await import('../../../js/worker.js');
