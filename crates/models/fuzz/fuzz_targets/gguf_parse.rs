//! Any bytes fed to the GGUF reader end in a validated file whose every
//! tensor can be read (and dequantized where supported) or in an error.
#![no_main]

use ipfs_accelerate_models::gguf::GgufFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = GgufFile::parse(data) {
        for info in file.tensors() {
            let bytes = file.tensor_bytes(&info.name).expect("a listed tensor is readable");
            assert_eq!(bytes.len() as u64, info.n_bytes);
            if info.dtype.can_dequantize() {
                let values = file.tensor_f32(&info.name).expect("a validated tensor dequantizes");
                assert_eq!(values.len() as u64, info.n_elements);
            }
        }
    }
});
