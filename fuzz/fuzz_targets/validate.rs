//! Fuzzes `decode::validate` differentially against serde_json: a record is accepted exactly
//! when serde_json parses it as an object and it has no `\u0000` escape, and the kept texts
//! are what `Option<&RawValue>` fields extract. The oracle is shared with the module's tests
//! (`ingestor_decode::validate::oracle`, feature `oracle`); `check` panics on any disagreement.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ingestor_decode::validate::oracle::check(data);
});
