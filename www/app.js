// The demo page: starts the engine (in its worker) and wires the sections together.
import { EchoEngine } from '/js/echo-engine.js';
import { byId, notify } from './ui/dom.js';
import { explain } from './ui/errors.js';
import { initModels } from './ui/models.js';
import { initChat } from './ui/chat.js';
import { initMembranes } from './ui/membranes.js';
import { initMemories } from './ui/memories.js';
import { initStatus } from './ui/status.js';

async function main() {
  let engine;
  try {
    engine = await EchoEngine.create();
  } catch (e) {
    notify(byId('app-error'), explain(e), 'error');
    byId('status-backend').textContent = 'failed to start';
    return;
  }
  const status = initStatus({ engine });
  const membranes = initMembranes();
  membranes.clear();
  const memories = initMemories({ engine, onChange: () => status.afterRequest() });
  const chat = initChat({
    engine,
    membranes,
    onStats: (stats) => status.addSpeed(stats),
    onRequestDone: () => status.afterRequest(),
    onMemoriesChanged: () => memories.refresh(),
  });

  // After every load attempt: a failed load may have unloaded the previous model.
  async function modelSettled() {
    const info = await engine.info().catch(() => null);
    document.body.dataset.model = info ? 'ready' : 'none';
    status.setModel(info);
    chat.setReady(!!info);
    memories.setReady(!!info);
  }
  initModels({ engine, onSettled: modelSettled });
  document.body.dataset.engine = 'ready';
}

main();
