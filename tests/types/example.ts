// Type-checked by `tsc --noEmit -p tests/types` (scripts/test.sh): a small program written
// against the package's declared API, as a user would import it.
import { EchoEngine, EchoError, type Completion, type Converted, type LoadProgress, type ModelInfo } from 'echo-engine';

export async function demo(modelUrl: string, vocab: Blob): Promise<string> {
  const engine = await EchoEngine.create({ memoryLimitMb: 256, backend: 'ggml' });
  const controller = new AbortController();
  try {
    const info: ModelInfo = await engine.loadModel(new URL(modelUrl), {
      tokenizer: 'world',
      vocab,
      head: 'Q8_0',
      onProgress: (p: LoadProgress) => console.log(p.phase, p.loaded, p.total ?? '?'),
      signal: controller.signal,
    });
    console.log(info.arch, info.nLayer, info.backend, info.headType);
    let text = '';
    const generation = engine.generate('Hello', { maxTokens: 32, temperature: 0.8, topP: 0.9, stop: ['\n\n'], seed: 1 });
    for await (const chunk of generation) text += chunk.text;
    const done: Completion = await generation.result;
    console.log(done.stopReason, done.stats.decodeTokensPerS);
    const logits: Float32Array = await engine.evalTokens(await engine.tokenize(text));
    const state: Uint8Array = await engine.saveState();
    await engine.loadState(state);
    const { usedBytes, limitBytes } = await engine.memory();
    console.log(logits.length, usedBytes / limitBytes, (await engine.metrics()).ggml?.latencyMs.p50);
    const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 8 } }, required: ['name'] };
    const structured: Completion = await engine.complete('JSON:', { maxTokens: 64, grammar: { jsonSchema: schema } });
    if (structured.stopReason === 'grammar') console.log(JSON.parse(structured.text).name);
    await engine.complete('Digits:', { grammar: { regex: '[0-9]{1,4}' } });
    await engine.complete('Sum:', { grammar: { gbnf: 'root ::= [0-9]+ "+" [0-9]+' } });
    const id: number = await engine.remember('My sister lives in Lyon.', { metadata: { source: 'chat' } });
    const [hit] = await engine.recall('Where does my sister live?', { k: 1 });
    console.log(id, hit?.score, hit?.cosine, hit?.lexical, (await engine.memories()).persistent);
    const vector: Float32Array = await engine.embed('Lyon');
    const run = engine.processStream({ userInput: 'Where does my sister live?' }, { reasoning: { branches: 2 } });
    for await (const event of run) console.log(event.type === 'membrane' ? event.name : event.text, vector.length);
    const response = await run.result;
    console.log(response.membranes.reasoning.steps[0]?.confidence, response.membranes.memory.stored?.id, (await engine.health()).backend);
    return (await engine.complete('Hi', { maxTokens: 8, continue: true, logprobs: true })).text;
  } catch (e) {
    if (e instanceof EchoError && e.code === 'model_too_large') console.log(e.neededBytes, e.limitBytes);
    throw e;
  } finally {
    await engine.unloadModel();
    engine.terminate();
  }
}

export async function convertCheckpoint(checkpoint: File): Promise<ModelInfo> {
  const engine = await EchoEngine.create();
  const converted: Converted = await engine.convert(checkpoint, { type: 'Q5_1', onProgress: (p) => console.log(p.phase, p.loaded / p.total) });
  console.log(converted.arch, converted.quantized, converted.blob.size);
  return engine.loadModel(converted.blob);
}
