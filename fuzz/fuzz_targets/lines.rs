//! Fuzz target `lines`: see [`jam_server_fuzz::lines`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jam_server_fuzz::lines(data));
