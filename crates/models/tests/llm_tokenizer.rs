//! The LLM tokenizer built from SmolLM2-135M-Instruct's GGUF metadata equals
//! transformers' (goldens from scripts/make-tokenizer-goldens.py), and
//! streaming detokenization equals decoding everything at once.

#[path = "common/smollm2.rs"]
mod smollm2;

use ipfs_accelerate_models::gguf::GgufFile;
use ipfs_accelerate_models::llm::detokenize::StreamDecoder;
use ipfs_accelerate_models::llm::tokenizer::LlmTokenizer;
use serde_json::Value;
use std::sync::OnceLock;

fn tokenizer() -> &'static LlmTokenizer {
    static TOK: OnceLock<LlmTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        LlmTokenizer::from_gguf_path(
            &smollm2::smollm2_gguf().expect("the SmolLM2 GGUF is missing: run scripts/fetch-test-models.sh"),
        )
        .expect("the GGUF tokenizer loads")
    })
}

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/goldens/smollm2-tokenizer.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn encodes_and_decodes_like_transformers() {
    let tok = tokenizer();
    let g = golden();
    let mut failures = Vec::new();
    for case in g["encode"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        let got = tok.encode(text, true).unwrap();
        if got != want {
            failures.push(format!("encode {text:?}: got {got:?}, transformers {want:?}"));
            continue;
        }
        assert_eq!(tok.encode(text, false).unwrap(), want, "add_bos_token is false: no difference");
        let decoded = tok.decode(&want, false).unwrap();
        if decoded != case["decoded"].as_str().unwrap() {
            failures.push(format!("decode {text:?}: got {decoded:?}, transformers {:?}", case["decoded"]));
        }
        let skipped = tok.decode(&want, true).unwrap();
        if skipped != case["decoded_skip_special"].as_str().unwrap() {
            failures.push(format!(
                "decode(skip) {text:?}: got {skipped:?}, transformers {:?}",
                case["decoded_skip_special"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn splits_digits_like_the_models_own_tokenizer() {
    // transformers' GGUF loader has no "smollm" pre-tokenizer and differs
    // here (see the golden script); llama.cpp and the model's tokenizer.json
    // split digits off first.
    let tok = tokenizer();
    for case in golden()["pre_tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(tok.encode(text, true).unwrap(), ids(&case["ids"]), "{text:?}");
        assert_eq!(tok.decode(&ids(&case["ids"]), false).unwrap(), text);
    }
}

#[test]
fn special_tokens_and_metadata() {
    let tok = tokenizer();
    let g = golden();
    assert_eq!(tok.vocab_size(), g["vocab_size"].as_u64().unwrap() as usize);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_ids(), &[2]);
    assert_eq!(tok.bos_token(), g["bos_token"].as_str());
    assert_eq!(tok.eos_token(), g["eos_token"].as_str());
    assert!(!tok.add_bos());
    assert!(tok.chat_template().unwrap().contains("<|im_start|>"));
    assert_eq!(tok.token_str(1).as_deref(), Some("<|im_start|>"));
    assert_eq!(tok.token_id("<|im_end|>"), Some(2));
    assert_eq!(tok.token_str(33662).as_deref(), Some("Ġhello"));
    assert_eq!(tok.token_str(u32::MAX), None);
    for id in 0..17 {
        assert!(tok.is_special(id), "control token {id} is special");
    }
    assert!(!tok.is_special(33662));
    // Special tokens in text are single ids; decoding can skip them.
    assert_eq!(tok.encode("<|im_start|><|im_end|>", false).unwrap(), vec![1, 2]);
    assert_eq!(tok.decode(&[1, 33662, 2], true).unwrap(), " hello");
    let err = tok.decode(&[49152], false).unwrap_err().to_string();
    assert!(err.contains("outside the vocabulary"), "{err}");
}

/// Streams `ids` one at a time and checks the pieces: no piece is empty or
/// holds U+FFFD, and all of them plus finish() equal one decode of all ids.
fn stream(tok: &LlmTokenizer, ids: &[u32], skip_special: bool) -> Vec<String> {
    let mut dec = StreamDecoder::new(tok, skip_special);
    let mut pieces = Vec::new();
    for &id in ids {
        if let Some(p) = dec.push(id).unwrap() {
            assert!(!p.is_empty());
            pieces.push(p);
        }
    }
    let rest = dec.finish().unwrap();
    let joined: String = pieces.concat() + &rest;
    assert_eq!(joined, tok.decode(ids, skip_special).unwrap(), "stream of {ids:?}");
    assert!(dec.ids().is_empty());
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

#[test]
fn streaming_equals_decoding_at_once() {
    let tok = tokenizer();
    for case in golden()["encode"].as_array().unwrap() {
        let all = ids(&case["ids"]);
        for skip in [false, true] {
            for piece in stream(tok, &all, skip) {
                assert!(!piece.contains('\u{FFFD}'), "{piece:?} in {:?}", case["text"]);
            }
        }
    }
}

#[test]
fn streaming_never_splits_a_character() {
    let tok = tokenizer();
    // An emoji is four bytes; byte-level BPE spells rare ones over several
    // tokens, each a fragment of its UTF-8 bytes.
    for text in ["🤗", " 🤗🚀", "日本語のテキスト", "👨‍👩‍👧 family", "a😀b", "∮ E⋅da = Q"]
    {
        let ids = tok.encode(text, false).unwrap();
        let mut dec = StreamDecoder::new(tok, false);
        let mut out = String::new();
        let mut held = 0;
        for &id in &ids {
            match dec.push(id).unwrap() {
                Some(p) => out.push_str(&p),
                None => held += 1,
            }
        }
        out.push_str(&dec.finish().unwrap());
        assert_eq!(out, text);
        if text == "🤗" {
            assert!(ids.len() > 1 && held == ids.len() - 1, "{text:?} spans {ids:?}: only its last token completes it");
        }
    }
}

#[test]
fn streaming_flushes_invalid_bytes_as_replacement() {
    let tok = tokenizer();
    // The first token of "🤗" alone is an incomplete UTF-8 sequence.
    let first = tok.encode("🤗", false).unwrap()[0];
    let mut dec = StreamDecoder::new(tok, false);
    assert_eq!(dec.push(tok.token_id("a").unwrap()).unwrap().as_deref(), Some("a"));
    assert_eq!(dec.push(first).unwrap(), None);
    assert_eq!(dec.finish().unwrap(), "\u{FFFD}");
    // The decoder starts over after finish().
    assert_eq!(dec.push(33662).unwrap().as_deref(), Some(" hello"));
}

#[test]
fn from_dir_reads_hf_configs() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    tok.inner().save(dir.path().join("tokenizer.json"), false).unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        serde_json::json!({
            "bos_token": {"content": "<|im_start|>", "special": true},
            "eos_token": "<|endoftext|>",
            "add_bos_token": false,
            "chat_template": [
                {"name": "tool_use", "template": "TOOLS"},
                {"name": "default", "template": "{{ messages[0]['content'] }}"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("generation_config.json"), r#"{"eos_token_id": [2, 0]}"#).unwrap();
    let d = LlmTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(d.bos_id(), Some(1));
    assert_eq!(d.eos_ids(), &[0, 2], "the configured EOS first, then generation_config's, without repeats");
    assert_eq!(d.eos_token(), Some("<|endoftext|>"));
    assert_eq!(d.chat_template(), Some("{{ messages[0]['content'] }}"));
    assert_eq!(d.vocab_size(), tok.vocab_size());
    for case in golden()["encode"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(d.encode(text, true).unwrap(), ids(&case["ids"]), "{text:?}");
    }
    assert!(d.is_special(2));

    // chat_template.jinja wins over tokenizer_config.json, and a single
    // eos_token_id is a number.
    std::fs::write(dir.path().join("chat_template.jinja"), "JINJA").unwrap();
    std::fs::write(dir.path().join("generation_config.json"), r#"{"eos_token_id": 2}"#).unwrap();
    let d = LlmTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(d.chat_template(), Some("JINJA"));
    assert_eq!(d.eos_ids(), &[0, 2]);
}

#[test]
fn from_dir_errors_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let e = LlmTokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    let e = LlmTokenizer::from_dir(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    std::fs::write(dir.path().join("tokenizer.json"), "{").unwrap();
    let e = LlmTokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a valid tokenizer.json"), "{e}");
}

/// One GGUF metadata value for [`metadata_gguf`].
enum Meta<'a> {
    Str(&'a str),
    U32(u32),
    Bool(bool),
    Strs(Vec<&'a str>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

/// A GGUF v3 file with this metadata and no tensors.
fn metadata_gguf(kvs: &[(&str, Meta)]) -> Vec<u8> {
    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    }
    fn array_head(out: &mut Vec<u8>, elem: u32, n: usize) {
        out.extend(9u32.to_le_bytes());
        out.extend(elem.to_le_bytes());
        out.extend((n as u64).to_le_bytes());
    }
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend((kvs.len() as u64).to_le_bytes());
    for (key, v) in kvs {
        s(&mut b, key);
        match v {
            Meta::Str(x) => {
                b.extend(8u32.to_le_bytes());
                s(&mut b, x);
            }
            Meta::U32(x) => {
                b.extend(4u32.to_le_bytes());
                b.extend(x.to_le_bytes());
            }
            Meta::Bool(x) => {
                b.extend(7u32.to_le_bytes());
                b.push(u8::from(*x));
            }
            Meta::Strs(xs) => {
                array_head(&mut b, 8, xs.len());
                xs.iter().for_each(|x| s(&mut b, x));
            }
            Meta::F32s(xs) => {
                array_head(&mut b, 6, xs.len());
                xs.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
            Meta::I32s(xs) => {
                array_head(&mut b, 5, xs.len());
                xs.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
        }
    }
    b
}

#[test]
fn sentencepiece_gguf_like_transformers() {
    // A tiny "llama" (SentencePiece BPE) vocabulary with scores and no
    // merges, as Llama 2 / TinyLlama files have; the golden holds what
    // transformers builds from the same metadata.
    let g = golden();
    let sp = &g["sentencepiece"];
    let tokens: Vec<&str> = sp["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let scores: Vec<f32> = sp["scores"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap() as f32).collect();
    let types: Vec<i32> = sp["token_types"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap() as i32).collect();
    let bytes = metadata_gguf(&[
        ("general.architecture", Meta::Str("llama")),
        ("tokenizer.ggml.model", Meta::Str("llama")),
        ("tokenizer.ggml.tokens", Meta::Strs(tokens)),
        ("tokenizer.ggml.scores", Meta::F32s(scores)),
        ("tokenizer.ggml.token_type", Meta::I32s(types)),
        ("tokenizer.ggml.unknown_token_id", Meta::U32(0)),
        ("tokenizer.ggml.bos_token_id", Meta::U32(1)),
        ("tokenizer.ggml.eos_token_id", Meta::U32(2)),
        ("tokenizer.ggml.add_bos_token", Meta::Bool(true)),
    ]);
    let tok = LlmTokenizer::from_gguf(&GgufFile::parse(&bytes).unwrap()).unwrap();
    assert!(tok.add_bos());
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_ids(), &[2]);
    let mut failures = Vec::new();
    for case in sp["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let with = tok.encode(text, true).unwrap();
        let without = tok.encode(text, false).unwrap();
        if with != ids(&case["ids"]) || without != ids(&case["ids_no_special"]) {
            failures.push(format!(
                "encode {text:?}: got {with:?} / {without:?}, transformers {} / {}",
                case["ids"], case["ids_no_special"]
            ));
            continue;
        }
        let d = tok.decode(&with, false).unwrap();
        let ds = tok.decode(&with, true).unwrap();
        if d != case["decoded"].as_str().unwrap() || ds != case["decoded_skip_special"].as_str().unwrap() {
            failures.push(format!(
                "decode {text:?}: got {d:?} / {ds:?}, transformers {} / {}",
                case["decoded"], case["decoded_skip_special"]
            ));
        }
        // The leading `▁` of the first word must not become a space when streamed.
        stream(&tok, &without, true);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn gguf_without_a_supported_tokenizer_is_an_error() {
    let b =
        metadata_gguf(&[("tokenizer.ggml.model", Meta::Str("t5")), ("tokenizer.ggml.tokens", Meta::Strs(vec!["a"]))]);
    let e = LlmTokenizer::from_gguf(&GgufFile::parse(&b).unwrap()).unwrap_err().to_string();
    assert!(e.contains("\"t5\" is not supported") && e.contains("gpt2"), "{e}");

    let e = LlmTokenizer::from_gguf(&GgufFile::parse(&metadata_gguf(&[])).unwrap()).unwrap_err().to_string();
    assert!(e.contains("no tokenizer.ggml.model"), "{e}");

    // A special token id past the vocabulary is named, not a panic.
    let b = metadata_gguf(&[
        ("tokenizer.ggml.model", Meta::Str("gpt2")),
        ("tokenizer.ggml.tokens", Meta::Strs(vec!["a", "b"])),
        ("tokenizer.ggml.merges", Meta::Strs(vec!["a b"])),
        ("tokenizer.ggml.eos_token_id", Meta::U32(7)),
    ]);
    let e = LlmTokenizer::from_gguf(&GgufFile::parse(&b).unwrap()).unwrap_err().to_string();
    assert!(e.contains("eos_token_id = 7"), "{e}");
}
