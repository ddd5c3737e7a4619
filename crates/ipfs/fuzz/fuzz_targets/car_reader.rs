//! Any bytes fed to the CAR reader end in verified blocks or an error.
#![no_main]

use ipfs_accelerate_ipfs::block::verify;
use ipfs_accelerate_ipfs::car::CarReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = CarReader::new(data) {
        while let Ok(Some((cid, block))) = reader.next_block() {
            assert!(verify(&cid, &block).is_ok(), "reader returned an unverified block");
        }
    }
});
