//! Fuzz target `session`: see [`jam_server_fuzz::session`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    jam_server_fuzz::session(data);
});
