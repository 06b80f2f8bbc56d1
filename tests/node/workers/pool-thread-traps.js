// The engine's worker (Node) with pool threads that hang ggml, then trap (tests/support/
// trapping-pool.mjs). Used by tests/node/threads.test.mjs.
import workerThreads from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';
import { trappingPool } from '../../support/trapping-pool.mjs';

workerThreads.Worker = trappingPool(workerThreads.Worker);
syncBuiltinESMExports();
await import('../../../js/worker.js');
