// The engine's worker (Node), dying on cue as a worker that hits a bug would: during a generation
// whose prompt is 'crash mid-generation', and right after a `remember` of 'crash while saving'
// starts writing the memory file. Used by tests/node/restart.test.mjs to check `autoRestart`.
import { parentPort } from 'node:worker_threads';

await import('../../../js/worker.js');
parentPort.on('message', ({ op, args }) => {
  if (op === 'generate' && args.prompt === 'crash mid-generation') setTimeout(() => process.exit(70), 30);
  if (op === 'remember' && args.text === 'crash while saving') setImmediate(() => process.exit(70));
});
