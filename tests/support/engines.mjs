// Engines for the Node API tests: made through `engine()`, all terminated by `terminateAll()`;
// `rejection()` awaits a promise that must reject with an EchoError and returns the error.
import assert from 'node:assert/strict';
import { EchoEngine, EchoError } from '../../js/echo-engine.js';

const engines = [];

export async function engine(options) {
  const e = await EchoEngine.create(options);
  engines.push(e);
  return e;
}

export function terminateAll() {
  engines.splice(0).forEach((e) => e.terminate());
}

export async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof EchoError, `not an EchoError: ${e}`);
    return e;
  }
  assert.fail('expected a rejection');
}
