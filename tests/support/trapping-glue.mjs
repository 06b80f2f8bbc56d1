// The threaded build's glue (the URL in `?glue=`) with a `threadPark` that leaves the slot's work
// undone for a second, then traps for real: Rust panics on a slot out of range, and the build
// aborts on a panic. See trapping-pool.mjs.
const glue = await import(new URL(import.meta.url).searchParams.get('glue'));

export const { initSync, threadRegister } = glue;

export function threadPark() {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
  glue.threadPark(2 ** 31);
}
