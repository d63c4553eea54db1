#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::uplink_batch(data));
