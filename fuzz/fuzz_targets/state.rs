#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| echo_fuzz::state(data));
