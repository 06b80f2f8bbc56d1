#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| echo_fuzz::model_file(data));
