#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crimg::fuzzing::compression(data));
