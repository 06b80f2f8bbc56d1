// Makes this process's ggml pool threads hang, then trap (tests/support/trapping-pool.mjs):
// imported by workers/pool-thread-traps.js, and preloaded into the Node CLI with `node --import`.
import workerThreads from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';
import { trappingPool } from '../../support/trapping-pool.mjs';

workerThreads.Worker = trappingPool(workerThreads.Worker);
syncBuiltinESMExports();
