//! Fuzz target `envelope`: see [`jam_server_fuzz::envelope`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jam_server_fuzz::envelope(data));
