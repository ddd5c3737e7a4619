//! The text-generation loader on hostile but parseable GGUF files (issue 8:
//! "a truncated or hostile GGUF gets a clear error, with no panic and no
//! huge allocation"). The GGUF *reader* has its own tests (`gguf.rs`); these
//! go one level up, through `TextGenerator::load` and a short greedy
//! generation:
//!
//! - a tiny valid Llama GGUF written here (2 blocks, width 32, grouped-query
//!   attention, a byte-level BPE vocabulary with merges and ChatML control
//!   tokens, a chat template, Q8_0/Q4_0/Q4_1/F16/F32 weights, tied output)
//!   loads and generates;
//! - a table of hand-made lies (metadata that contradicts the tensors,
//!   absurd counts, vocabularies of the wrong type or length, bad merges,
//!   special ids out of range, broken chat templates, weights of the wrong
//!   type or shape, missing tensors), each an error naming the problem;
//! - 1500 seeded mutations (structured: a metadata value or tensor replaced
//!   by a hostile one; raw: bytes of the metadata/tensor-info region flipped,
//!   length fields set huge, truncations), each loaded and, when it loads,
//!   run for 3 greedy tokens, never panicking and never making an allocation
//!   over 256 MiB.
//!
//! Values the loader tolerates on purpose (ignored or harmless) are listed
//! in `tolerated_oddities_never_panic`. Lying rotary sizes, which once
//! allocated before the plausibility check, have their own test
//! (`lying_rotary_sizes_are_refused_before_any_allocation`).

#[path = "common/gguf_writer.rs"]
mod gguf_writer;

use gguf_writer::{write_gguf, T};
use half::f16;
use ipfs_accelerate_models::gguf::{GgufFile, MetadataValue as V, ValueType};
use ipfs_accelerate_models::llm::chat_template::ChatMessage;
use ipfs_accelerate_models::llm::generate::GenerationOptions;
use ipfs_accelerate_models::llm::sampler::SamplingOptions;
use ipfs_accelerate_models::llm::text::{Prompt, TextGeneration, TextGenerator, TextOptions};
use ipfs_accelerate_models::llm::weights::WeightBits;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Mutex, Once};

// ------------------------------------------------------------ allocation --

/// Records the largest single allocation made on the current thread, as
/// `gguf.rs` does: tests run in parallel, and every size a lying field can
/// reach is allocated on the loading thread (the CPU backend's worker
/// threads only split work already sized by the loaded tensors).
struct TrackingAlloc;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
}

/// Resets the record of this thread, returning what it held.
fn take_largest() -> usize {
    LARGEST.with(|m| m.replace(0))
}

// SAFETY: defers to the system allocator; only records sizes in a const
// thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

/// No single allocation of loading plus a 3-token generation may exceed this
/// (the valid model's file is about 20 KiB).
const ALLOCATION_LIMIT: usize = 256 << 20;

// --------------------------------------------------------------- the model --

/// A tensor of the model being written (owned name, unlike the writer's).
#[derive(Clone, Debug)]
struct Tensor {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    data: Vec<u8>,
}

/// A GGUF file as metadata and tensors, edited by the variants and mutations
/// before being written.
#[derive(Clone, Debug)]
struct Model {
    metadata: Vec<(String, V)>,
    tensors: Vec<Tensor>,
}

/// ggml type ids used here.
const F32: u32 = 0;
const F16: u32 = 1;
const Q4_0: u32 = 2;
const Q4_1: u32 = 3;
const Q5_0: u32 = 6;
const Q8_0: u32 = 8;
const I32: u32 = 26;

/// (elements per block, bytes per block) of the ggml types the parser knows.
fn block_layout(type_id: u32) -> Option<(u64, u64)> {
    Some(match type_id {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 36),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        30 => (1, 2),
        _ => return None,
    })
}

/// Bytes of a tensor of `dims` and `type_id` (0 for an unknown type or a
/// partial block, which the parser rejects anyway).
fn byte_len(type_id: u32, dims: &[u64]) -> usize {
    let n: u64 = dims.iter().product();
    match block_layout(type_id) {
        Some((block, bytes)) if n.is_multiple_of(block) && n < 1 << 24 => (n / block * bytes) as usize,
        _ => 0,
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn h(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}

/// Deterministic small weights of `n` elements stored as `type_id`.
fn weights(rng: &mut Rng, type_id: u32, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    match type_id {
        F32 => (0..n).for_each(|_| out.extend((1.0 + 0.1 * rng.signed()).to_le_bytes())),
        F16 => (0..n).for_each(|_| out.extend(h(0.05 * rng.signed()))),
        Q8_0 => {
            for _ in 0..n / 32 {
                out.extend(h(0.002));
                out.extend((0..32).map(|_| (rng.below(255) as i32 - 127) as i8 as u8));
            }
        }
        Q4_0 => {
            for _ in 0..n / 32 {
                out.extend(h(0.01));
                out.extend((0..16).map(|_| rng.below(256) as u8));
            }
        }
        Q4_1 => {
            for _ in 0..n / 32 {
                out.extend(h(0.01));
                out.extend(h(-0.075));
                out.extend((0..16).map(|_| rng.below(256) as u8));
            }
        }
        _ => out.extend((0..byte_len(type_id, &[n as u64])).map(|_| rng.below(256) as u8)),
    }
    out
}

/// GPT-2's byte alphabet (`bytes_to_unicode`).
fn byte_alphabet() -> Vec<char> {
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
            if printable {
                char::from(b)
            } else {
                next += 1;
                char::from_u32(next - 1).unwrap()
            }
        })
        .collect()
}

const WIDTH: u64 = 32;
const FF: u64 = 64;
const KV_WIDTH: u64 = 16;
const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const MERGES: [&str; 5] = ["h e", "l l", "Ġ w", "o r", "l d"];
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// The vocabulary: 3 control tokens, the 256 byte characters, the merges.
fn vocabulary() -> Vec<String> {
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    tokens.extend(byte_alphabet().iter().map(|c| c.to_string()));
    tokens.extend(MERGES.iter().map(|m| m.replace(' ', "")));
    tokens
}

fn strings(items: &[String]) -> V {
    V::Array { elem: ValueType::String, items: items.iter().map(|s| V::String(s.clone())).collect() }
}

impl Model {
    /// The tiny valid Llama model.
    fn valid() -> Model {
        let s = |x: &str| V::String(x.to_string());
        let tokens = vocabulary();
        let vocab = tokens.len() as u64;
        let types: Vec<V> = (0..tokens.len()).map(|i| V::I32(if i < SPECIALS.len() { 3 } else { 1 })).collect();
        let merges: Vec<String> = MERGES.iter().map(|m| m.to_string()).collect();
        let metadata = vec![
            ("general.architecture", s("llama")),
            ("general.name", s("hostile-tiny")),
            ("llama.block_count", V::U32(2)),
            ("llama.context_length", V::U32(64)),
            ("llama.embedding_length", V::U32(WIDTH as u32)),
            ("llama.feed_forward_length", V::U32(FF as u32)),
            ("llama.attention.head_count", V::U32(2)),
            ("llama.attention.head_count_kv", V::U32(1)),
            ("llama.rope.freq_base", V::F32(10000.0)),
            ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
            ("tokenizer.ggml.model", s("gpt2")),
            ("tokenizer.ggml.pre", s("smollm")),
            ("tokenizer.ggml.tokens", strings(&tokens)),
            ("tokenizer.ggml.token_type", V::Array { elem: ValueType::I32, items: types }),
            ("tokenizer.ggml.merges", strings(&merges)),
            ("tokenizer.ggml.bos_token_id", V::U32(1)),
            ("tokenizer.ggml.eos_token_id", V::U32(2)),
            ("tokenizer.ggml.add_bos_token", V::Bool(true)),
            ("tokenizer.chat_template", s(CHATML)),
        ];
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let mut tensors = Vec::new();
        let mut add = |name: String, dims: Vec<u64>, type_id: u32| {
            let data = weights(&mut rng, type_id, dims.iter().product::<u64>() as usize);
            tensors.push(Tensor { name, dims, type_id, data });
        };
        add("token_embd.weight".into(), vec![WIDTH, vocab], Q8_0);
        for l in 0..2 {
            let n = |part: &str| format!("blk.{l}.{part}.weight");
            add(n("attn_norm"), vec![WIDTH], F32);
            add(n("attn_q"), vec![WIDTH, WIDTH], Q4_1);
            add(n("attn_k"), vec![WIDTH, KV_WIDTH], Q4_0);
            add(n("attn_v"), vec![WIDTH, KV_WIDTH], Q4_0);
            add(n("attn_output"), vec![WIDTH, WIDTH], Q8_0);
            add(n("ffn_norm"), vec![WIDTH], F32);
            add(n("ffn_gate"), vec![WIDTH, FF], Q4_1);
            add(n("ffn_up"), vec![WIDTH, FF], Q4_1);
            add(n("ffn_down"), vec![FF, WIDTH], F16);
        }
        add("output_norm.weight".into(), vec![WIDTH], F32);
        Model { metadata: metadata.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), tensors }
    }

    /// Sets (or adds) metadata `key`.
    fn set(mut self, key: &str, value: V) -> Model {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        self
    }

    fn remove(mut self, key: &str) -> Model {
        self.metadata.retain(|(k, _)| k != key);
        self
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn drop_tensor(mut self, name: &str) -> Model {
        let before = self.tensors.len();
        self.tensors.retain(|t| t.name != name);
        assert_eq!(self.tensors.len() + 1, before, "no tensor {name}");
        self
    }

    /// Replaces tensor `name` by one of `dims` and `type_id` (with
    /// deterministic data of the right length), or adds it.
    fn retype(mut self, name: &str, dims: &[u64], type_id: u32) -> Model {
        let mut rng = Rng(0x0bad_cafe ^ name.len() as u64);
        let data = weights(&mut rng, type_id, dims.iter().product::<u64>() as usize);
        let t = Tensor { name: name.to_string(), dims: dims.to_vec(), type_id, data };
        match self.tensors.iter_mut().find(|x| x.name == name) {
            Some(x) => *x = t,
            None => self.tensors.push(t),
        }
        self
    }

    fn tensor_mut(&mut self, name: &str) -> &mut Tensor {
        self.tensors.iter_mut().find(|t| t.name == name).unwrap()
    }

    fn bytes(&self) -> Vec<u8> {
        let metadata: Vec<(&str, V)> = self.metadata.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let tensors: Vec<T> = self
            .tensors
            .iter()
            .map(|t| T { name: intern(&t.name), dims: t.dims.clone(), type_id: t.type_id, data: t.data.clone() })
            .collect();
        write_gguf(3, &metadata, &tensors, 32)
    }
}

/// The writer wants `&'static str` names; each distinct name is leaked once.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashMap<String, &'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let names = names.get_or_insert_with(HashMap::new);
    if let Some(&n) = names.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(name.to_string(), leaked);
    leaked
}

// ------------------------------------------------------------- running --

/// Greedy generation of `n` tokens, through end-of-sequence tokens.
fn greedy(n: usize) -> TextOptions {
    TextOptions {
        generation: GenerationOptions { max_tokens: n, sampling: SamplingOptions::greedy(), ..Default::default() },
        ignore_eos: true,
        ..Default::default()
    }
}

fn generate(model: &TextGenerator, prompt: &Prompt, n: usize) -> Result<TextGeneration, String> {
    model.generate(prompt, &greedy(n), &mut |_| ControlFlow::Continue(())).map_err(|e| e.to_string())
}

fn load(path: &Path) -> Result<TextGenerator, String> {
    TextGenerator::load(path, WeightBits::AsStored).map_err(|e| e.to_string())
}

/// Where the last panic happened (message and location), recorded by a
/// hook so a caught panic can be reported precisely.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn install_panic_recorder() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(info.to_string());
            default(info);
        }));
    });
}

fn last_panic() -> String {
    LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_else(|| "(no message)".into())
}

/// What loading (and, when it loads, generating from) a file did.
#[derive(Debug)]
enum Outcome {
    /// Loaded and generated.
    Generated(TextGeneration),
    /// Loaded; generation returned this error.
    GenerateErr(String),
    /// Loading returned this error.
    LoadErr(String),
    /// Something panicked: the message and location.
    Panicked(String),
}

/// Writes `bytes` to `path`, loads it and, when it loads, generates `n`
/// greedy tokens from `prompt`, all inside `catch_unwind`.
fn run(path: &Path, bytes: &[u8], prompt: &Prompt, n: usize) -> Outcome {
    install_panic_recorder();
    std::fs::write(path, bytes).unwrap();
    let result = catch_unwind(AssertUnwindSafe(|| match load(path) {
        Err(e) => Outcome::LoadErr(e),
        Ok(model) => match generate(&model, prompt, n) {
            Ok(g) => Outcome::Generated(g),
            Err(e) => Outcome::GenerateErr(e),
        },
    }));
    result.unwrap_or_else(|_| Outcome::Panicked(last_panic()))
}

fn text(s: &str) -> Prompt {
    Prompt::Text(s.to_string())
}

// ------------------------------------------------------- the valid model --

#[test]
fn the_tiny_valid_model_loads_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let bytes = Model::valid().bytes();
    std::fs::write(&path, &bytes).unwrap();
    GgufFile::parse(&bytes).expect("the writer writes a valid GGUF");

    let model = TextGenerator::load(&path, WeightBits::AsStored).expect("the tiny model loads");
    let c = model.decoder().config();
    assert_eq!((c.vocab_size, c.hidden_size, c.layers), (vocabulary().len(), 32, 2));
    assert_eq!((c.heads, c.kv_heads, c.head_dim, c.intermediate_size, c.context_length), (2, 1, 16, 64, 64));
    let tok = model.tokenizer();
    assert_eq!(tok.vocab_size(), 3 + 256 + MERGES.len());
    assert_eq!((tok.bos_id(), tok.eos_ids()), (Some(1), &[2][..]));
    assert!(tok.is_special(1) && tok.is_special(2) && !tok.is_special(3));
    // BOS prepended; the merges apply ("he", "ll", "Ġw", "or", "ld").
    let he = tok.token_id("he").unwrap();
    let ll = tok.token_id("ll").unwrap();
    let ids = model.encode(&text("hell")).unwrap();
    assert_eq!(ids, vec![1, he, ll]);
    assert_eq!(tok.decode(&tok.encode(" world", false).unwrap(), false).unwrap(), " world");

    let first = generate(&model, &text("hello world"), 3).unwrap();
    assert_eq!(first.tokens.token_ids.len(), 3, "{first:?}");
    assert_eq!(first.tokens.prompt_tokens, model.encode(&text("hello world")).unwrap().len());
    let again = generate(&model, &text("hello world"), 3).unwrap();
    assert_eq!(first.tokens.token_ids, again.tokens.token_ids, "greedy is deterministic");
    assert_eq!(first.text, again.text);

    assert!(model.has_chat_template());
    let chat = Prompt::Chat(vec![ChatMessage::new("user", "hi")]);
    let rendered = model.render_chat(&[ChatMessage::new("user", "hi")]).unwrap();
    assert_eq!(rendered, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    let ids = model.encode(&chat).unwrap();
    assert_eq!((ids[0], ids.iter().filter(|&&i| i == 2).count()), (1, 1), "{ids:?}");
    assert_eq!(generate(&model, &chat, 3).unwrap().tokens.token_ids.len(), 3);
}

// ------------------------------------------------------- hostile variants --

/// A hand-made hostile variant: the file, and what must happen.
struct Case {
    what: &'static str,
    model: Model,
    expect: Expect,
}

enum Expect {
    /// Loading fails with a message holding every word.
    LoadErr(&'static [&'static str]),
    /// Loads; generating from the prompt fails with a message holding every word.
    GenerateErr(Prompt, &'static [&'static str]),
}

fn case(what: &'static str, model: Model, words: &'static [&'static str]) -> Case {
    Case { what, model, expect: Expect::LoadErr(words) }
}

fn hostile_cases() -> Vec<Case> {
    let s = |x: &str| V::String(x.to_string());
    let v = Model::valid;
    let vocab = vocabulary();
    let chat = || Prompt::Chat(vec![ChatMessage::new("user", "hi")]);
    vec![
        // Counts that lie.
        case(
            "block_count 10^9",
            v().set("llama.block_count", V::U64(1_000_000_000)),
            &["layer count", "implausibly large"],
        ),
        case(
            "block_count u64::MAX",
            v().set("llama.block_count", V::U64(u64::MAX)),
            &["layer count", "implausibly large"],
        ),
        case(
            "block_count 1000 (tensors for 2)",
            v().set("llama.block_count", V::U32(1000)),
            &["blk.2.attn_q.weight", "not found"],
        ),
        case("block_count 0", v().set("llama.block_count", V::U32(0)), &["layer count is 0"]),
        case("block_count missing", v().remove("llama.block_count"), &["llama.block_count", "missing"]),
        case("block_count a string", v().set("llama.block_count", s("2")), &["llama.block_count", "not an integer"]),
        case(
            "block_count negative",
            v().set("llama.block_count", V::I32(-2)),
            &["llama.block_count", "not an integer"],
        ),
        case("head_count 0", v().set("llama.attention.head_count", V::U32(0)), &["head count is 0"]),
        case(
            "head_count 2^40",
            v().set("llama.attention.head_count", V::U64(1 << 40)),
            &["head count", "implausibly large"],
        ),
        case("head_count_kv 0", v().set("llama.attention.head_count_kv", V::U32(0)), &["key/value head count is 0"]),
        case(
            "head_count_kv 3 of 2 heads",
            v().set("llama.attention.head_count_kv", V::U32(3)),
            &["2 query heads cannot be grouped over 3"],
        ),
        case(
            "head_count 3, head_count_kv 2",
            v().set("llama.attention.head_count", V::U32(3)).set("llama.attention.head_count_kv", V::U32(2)),
            &["3 query heads cannot be grouped over 2"],
        ),
        // Heads 4 → head width 8, q width 32 still matches attn_q, but the
        // 16-wide K/V then mean 2 KV heads: 4 % 2 groups fine, rope fine; the
        // K/V tensors hold 16 rows where kv_heads 1 × 8 expects 8.
        case(
            "head_count 4 (head width 8)",
            v().set("llama.attention.head_count", V::U32(4)),
            &["blk.0.attn_k.weight", "[32, 8]"],
        ),
        case("key_length 0", v().set("llama.attention.key_length", V::U32(0)), &["head width is 0"]),
        // Huge key_length / rope.dimension_count / embedding_length: see
        // `lying_rotary_sizes_are_refused_before_any_allocation`.
        case("key_length 64", v().set("llama.attention.key_length", V::U32(64)), &["blk.0.attn_q.weight", "[32, 128]"]),
        case("embedding_length 64", v().set("llama.embedding_length", V::U32(64)), &["token_embd.weight", "[64, 264]"]),
        case("embedding_length 0", v().set("llama.embedding_length", V::U32(0)), &["hidden size is 0"]),
        case(
            "feed_forward_length 128",
            v().set("llama.feed_forward_length", V::U32(128)),
            &["blk.0.ffn_gate.weight", "[32, 128]"],
        ),
        case("feed_forward_length 0", v().set("llama.feed_forward_length", V::U32(0)), &["feed-forward width is 0"]),
        case("context_length 0", v().set("llama.context_length", V::U32(0)), &["context length is 0"]),
        case(
            "context_length 2^40",
            v().set("llama.context_length", V::U64(1 << 40)),
            &["context length", "implausibly large"],
        ),
        case(
            "vocab_size 300 (embedding 264)",
            v().set("llama.vocab_size", V::U32(300)),
            &["token_embd.weight", "[32, 300]"],
        ),
        case(
            "vocab_size 2^40",
            v().set("llama.vocab_size", V::U64(1 << 40)),
            &["vocabulary size", "implausibly large"],
        ),
        case("vocab_size 0", v().set("llama.vocab_size", V::U32(0)), &["vocabulary size is 0"]),
        case(
            "rope dimension_count 64 > head width 16",
            v().set("llama.rope.dimension_count", V::U32(64)),
            &["rotary dimensions 64 exceed the head width 16"],
        ),
        case(
            "rope scaling yarn",
            v().set("llama.rope.scaling.type", s("yarn")),
            &["rope scaling", "yarn", "not supported"],
        ),
        case(
            "rope_freqs of 3 values",
            v().retype("rope_freqs.weight", &[3], F32),
            &["rope_freqs has 3 values, expected 8"],
        ),
        case(
            "architecture bert",
            v().set("general.architecture", s("bert")),
            &["\"bert\"", "not supported for text generation"],
        ),
        case("architecture missing", v().remove("general.architecture"), &["no general.architecture"]),
        case("architecture a number", v().set("general.architecture", V::U32(7)), &["no general.architecture"]),
        // Vocabularies of the wrong type or length.
        case(
            "tokens an i32 array",
            v().set("tokenizer.ggml.tokens", V::Array { elem: ValueType::I32, items: vec![V::I32(1); 264] }),
            &["tokenizer.ggml.tokens", "string array"],
        ),
        case("tokens a string", v().set("tokenizer.ggml.tokens", s("abc")), &["vocabulary size"]),
        case("tokens missing", v().remove("tokenizer.ggml.tokens"), &["no vocabulary size"]),
        case(
            "tokens missing, vocab_size given",
            v().remove("tokenizer.ggml.tokens").set("llama.vocab_size", V::U32(264)),
            &["tokenizer.ggml.tokens"],
        ),
        case(
            "300 tokens for a 264-row embedding",
            v().set("llama.vocab_size", V::U32(264)).set("tokenizer.ggml.tokens", {
                let mut t = vocab.clone();
                t.extend((0..36).map(|i| format!("extra{i}")));
                strings(&t)
            }),
            &["tokenizer has 300 tokens", "embedding only 264"],
        ),
        case(
            "200 tokens (vocab size from the tokens)",
            v().set("tokenizer.ggml.tokens", strings(&vocab[..200])),
            &["token_embd.weight", "[32, 200]"],
        ),
        case("tokenizer model missing", v().remove("tokenizer.ggml.model"), &["no tokenizer.ggml.model"]),
        case(
            "tokenizer model bert",
            v().set("tokenizer.ggml.model", s("bert")),
            &["tokenizer model \"bert\" is not supported"],
        ),
        case(
            "tokenizer model llama without scores or merges",
            v().set("tokenizer.ggml.model", s("llama")).remove("tokenizer.ggml.merges"),
            &["neither tokenizer.ggml.merges nor"],
        ),
        // Merges that are not "a b" pairs, or name tokens the vocabulary lacks.
        case(
            "merge without a space",
            v().set("tokenizer.ggml.merges", strings(&["h e".into(), "ll".into()])),
            &["merges entry \"ll\"", "not two tokens"],
        ),
        case(
            "merge of an empty string",
            v().set("tokenizer.ggml.merges", strings(&["".into()])),
            &["merges entry \"\""],
        ),
        case(
            "merge of unknown tokens",
            v().set("tokenizer.ggml.merges", strings(&["h e".into(), "zz qq".into()])),
            &["cannot build the BPE model"],
        ),
        case(
            "merge whose result is not a token",
            v().set("tokenizer.ggml.merges", strings(&["a b".into()])),
            &["cannot build the BPE model"],
        ),
        // Special ids out of range.
        case(
            "bos id 10^6",
            v().set("tokenizer.ggml.bos_token_id", V::U32(1_000_000)),
            &["bos_token_id = 1000000", "outside the vocabulary of 264"],
        ),
        case(
            "eos id 264",
            v().set("tokenizer.ggml.eos_token_id", V::U32(264)),
            &["eos_token_id = 264", "outside the vocabulary of 264"],
        ),
        case("unknown id 999", v().set("tokenizer.ggml.unknown_token_id", V::U32(999)), &["unknown_token_id = 999"]),
        case("eot id 300", v().set("tokenizer.ggml.eot_token_id", V::I32(300)), &["eot_token_id = 300"]),
        // Chat templates that are not Jinja, or raise.
        case(
            "chat template {% for %}",
            v().set("tokenizer.chat_template", s("{% for %}")),
            &["chat template", "syntax error"],
        ),
        case("chat template unclosed {{", v().set("tokenizer.chat_template", s("{{ messages")), &["chat template"]),
        case(
            "chat template unknown tag",
            v().set("tokenizer.chat_template", s("{% frobnicate %}")),
            &["chat template"],
        ),
        Case {
            what: "chat template that raises",
            model: v().set("tokenizer.chat_template", s("{{ raise_exception('only system messages, please') }}")),
            expect: Expect::GenerateErr(chat(), &["only system messages, please"]),
        },
        Case {
            what: "chat template that indexes past the messages",
            model: v().set("tokenizer.chat_template", s("{{ messages[5]['content'] + 1 }}")),
            expect: Expect::GenerateErr(chat(), &["chat template"]),
        },
        Case {
            what: "chat template not a string (no template)",
            model: v().set("tokenizer.chat_template", V::U32(1)),
            expect: Expect::GenerateErr(chat(), &["no chat template"]),
        },
        // Weights of the wrong type or shape, and missing ones.
        case("attn_q as Q5_0", v().retype("blk.0.attn_q.weight", &[32, 32], Q5_0), &["blk.0.attn_q.weight", "Q5_0"]),
        case("attn_k as I32", v().retype("blk.1.attn_k.weight", &[32, 16], I32), &["blk.1.attn_k.weight", "I32"]),
        case("token_embd as Q5_1", v().retype("token_embd.weight", &[32, 264], 7), &["token_embd.weight", "Q5_1"]),
        case(
            "ffn_down as BF16",
            v().retype("blk.0.ffn_down.weight", &[64, 32], 30),
            &["blk.0.ffn_down.weight", "BF16"],
        ),
        case("attn_norm as I32", v().retype("blk.0.attn_norm.weight", &[32], I32), &["blk.0.attn_norm.weight", "I32"]),
        case(
            "attn_norm of 64",
            v().retype("blk.1.attn_norm.weight", &[64], F32),
            &["blk.1.attn_norm.weight", "64 values, expected 32"],
        ),
        case(
            "attn_q transposed",
            v().retype("blk.0.attn_q.weight", &[32, 16], Q4_1),
            &["blk.0.attn_q.weight", "[32, 16]"],
        ),
        case(
            "ffn_up 3-D",
            v().retype("blk.0.ffn_up.weight", &[32, 64, 1], Q4_1),
            &["blk.0.ffn_up.weight", "[32, 64, 1]"],
        ),
        case(
            "ffn_down transposed",
            v().retype("blk.1.ffn_down.weight", &[32, 64], F16),
            &["blk.1.ffn_down.weight", "[32, 64]"],
        ),
        case(
            "output.weight of the wrong width",
            v().retype("output.weight", &[64, 264], F16),
            &["output.weight", "[64, 264]"],
        ),
        case("output.weight as I32", v().retype("output.weight", &[32, 264], I32), &["output.weight", "I32"]),
        case(
            "attn_q bias of 3",
            v().retype("blk.0.attn_q.bias", &[3], F32),
            &["blk.0.attn_q.bias", "3 values, expected 32"],
        ),
        case("token_embd missing", v().drop_tensor("token_embd.weight"), &["token_embd.weight", "not found"]),
        case(
            "blk.1.ffn_down missing",
            v().drop_tensor("blk.1.ffn_down.weight"),
            &["blk.1.ffn_down.weight", "not found"],
        ),
        case("blk.0.attn_v missing", v().drop_tensor("blk.0.attn_v.weight"), &["blk.0.attn_v.weight", "not found"]),
        case("output_norm missing", v().drop_tensor("output_norm.weight"), &["output_norm.weight", "not found"]),
        // Numbers that make the arithmetic meaningless: an error at the
        // sampler, never a token chosen from NaN.
        Case {
            what: "NaN norm weights",
            model: {
                let mut m = v();
                m.tensor_mut("output_norm.weight").data = f32::NAN.to_le_bytes().repeat(32);
                m
            },
            expect: Expect::GenerateErr(text("hello"), &["NaN logits"]),
        },
        Case {
            what: "rms epsilon NaN",
            model: v().set("llama.attention.layer_norm_rms_epsilon", V::F32(f32::NAN)),
            expect: Expect::GenerateErr(text("hello"), &["NaN logits"]),
        },
        Case {
            what: "rope.freq_base NaN",
            model: v().set("llama.rope.freq_base", V::F32(f32::NAN)),
            expect: Expect::GenerateErr(text("hello"), &["NaN logits"]),
        },
        Case {
            what: "context_length 4 shorter than the prompt",
            model: v().set("llama.context_length", V::U32(4)),
            expect: Expect::GenerateErr(text("hello world, hello"), &["context holds 4"]),
        },
    ]
}

#[test]
fn hostile_variants_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.gguf");
    let mut failures = Vec::new();
    for c in hostile_cases() {
        let bytes = c.model.bytes();
        let (prompt, words) = match &c.expect {
            Expect::LoadErr(words) => (text("hello"), *words),
            Expect::GenerateErr(prompt, words) => (prompt.clone(), *words),
        };
        take_largest();
        let outcome = run(&path, &bytes, &prompt, 3);
        let largest = take_largest();
        if largest > ALLOCATION_LIMIT {
            failures.push(format!("{}: a {largest}-byte allocation", c.what));
        }
        let message = match (&c.expect, &outcome) {
            (Expect::LoadErr(_), Outcome::LoadErr(m)) | (Expect::GenerateErr(..), Outcome::GenerateErr(m)) => m,
            _ => {
                failures.push(format!("{}: expected an error with {words:?}, got {outcome:?}", c.what));
                continue;
            }
        };
        if let Some(missing) = words.iter().find(|w| !message.contains(**w)) {
            failures.push(format!("{}: {missing:?} not in: {message}", c.what));
        }
    }
    assert!(failures.is_empty(), "{} of the variants failed:\n{}", failures.len(), failures.join("\n"));
}

/// Files that lie in ways the loader accepts on purpose (values it ignores
/// or tolerates): they load and generate, or fail with an error, but never
/// panic. Listed so a change of behaviour is noticed.
#[test]
fn tolerated_oddities_never_panic() {
    let s = |x: &str| V::String(x.to_string());
    let v = Model::valid;
    let vocab = vocabulary();
    let cases = [
        // Fewer tokens than embedding rows (padding rows): a generated id past
        // the tokenizer is an error at decode (or a token), not a panic.
        (
            "264 tokens, 300 embedding rows",
            v().set("llama.vocab_size", V::U32(300)).retype("token_embd.weight", &[32, 300], Q8_0),
        ),
        (
            "merges an i32 array (derived from the vocabulary)",
            v().set("tokenizer.ggml.merges", V::Array { elem: ValueType::I32, items: vec![V::I32(0)] }),
        ),
        ("token_type strings", v().set("tokenizer.ggml.token_type", strings(&vocab))),
        (
            "token_type of 2 entries",
            v().set("tokenizer.ggml.token_type", V::Array { elem: ValueType::I32, items: vec![V::I32(3); 2] }),
        ),
        // An id that does not fit a u32 is taken as absent, not as out of
        // range: the model then has no end-of-sequence token (tokenizer.rs
        // `id`: get_u32, else get_i64 → u32::try_from → None).
        ("eos id -1 (ignored: no EOS)", v().set("tokenizer.ggml.eos_token_id", V::I32(-1))),
        ("eos id 2^40 (ignored: no EOS)", v().set("tokenizer.ggml.eos_token_id", V::U64(1 << 40))),
        // A Q8_0 norm dequantizes: odd but loadable.
        ("output_norm as Q8_0", v().retype("output_norm.weight", &[32], Q8_0)),
        ("bos id a string (ignored)", v().set("tokenizer.ggml.bos_token_id", s("1"))),
        ("pre-tokenizer unknown", v().set("tokenizer.ggml.pre", s("no-such-pre"))),
        ("block_count 1 (tensors for 2)", v().set("llama.block_count", V::U32(1))),
        (
            "empty tokens and duplicates",
            v().set("tokenizer.ggml.tokens", {
                let mut t = vocab.clone();
                t[3] = String::new();
                t[4] = "<|im_end|>".into();
                strings(&t)
            }),
        ),
        ("chat template empty", v().set("tokenizer.chat_template", s(""))),
        ("rms epsilon negative", v().set("llama.attention.layer_norm_rms_epsilon", V::F32(-1.0))),
        ("rope.freq_base 0", v().set("llama.rope.freq_base", V::F32(0.0))),
        (
            "rope scaling linear factor 0",
            v().set("llama.rope.scaling.type", s("linear")).set("llama.rope.scaling.factor", V::F32(0.0)),
        ),
        ("embedding of infinities", {
            let mut m = v();
            m = m.retype("token_embd.weight", &[32, 264], F16);
            m.tensor_mut("token_embd.weight").data = h(f32::INFINITY).repeat(32 * 264);
            m
        }),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.gguf");
    let mut panics = Vec::new();
    for (what, model) in cases {
        for prompt in [text("hello world"), Prompt::Chat(vec![ChatMessage::new("user", "hi")])] {
            match run(&path, &model.bytes(), &prompt, 3) {
                Outcome::Panicked(m) => panics.push(format!("{what}: {m}")),
                other => eprintln!("{what}: {}", summary(&other)),
            }
        }
    }
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
}

fn summary(o: &Outcome) -> String {
    match o {
        Outcome::Generated(g) => format!("generated {:?}", g.tokens.token_ids),
        Outcome::GenerateErr(e) => format!("generate error: {e}"),
        Outcome::LoadErr(e) => format!("load error: {e}"),
        Outcome::Panicked(e) => format!("PANIC: {e}"),
    }
}

// ------------------------------------------------------ seeded mutations --

/// A hostile metadata value of any type.
fn hostile_value(rng: &mut Rng) -> V {
    let ints = [
        0u64,
        1,
        2,
        3,
        7,
        31,
        32,
        33,
        64,
        263,
        264,
        1 << 16,
        1 << 24,
        (1 << 24) + 1,
        u32::MAX as u64,
        1 << 40,
        u64::MAX,
    ];
    let int = ints[rng.below(ints.len())];
    let floats = [0.0f32, -1.0, 1e-30, 1e30, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 10000.0, 0.5];
    let strs = [
        "",
        "llama",
        "gpt2",
        "bert",
        "2",
        "{% for %}",
        "{{ raise_exception('x') }}",
        "{{ messages[9] }}",
        "smollm",
        "linear",
        "yarn",
        "h e",
        "he",
        "\u{0}",
    ];
    let string = || V::String(strs[int as usize % strs.len()].to_string());
    match rng.below(12) {
        0 => V::U32(int as u32),
        1 => V::U64(int),
        2 => V::I32((int as i32).wrapping_neg()),
        3 => V::I64(int as i64),
        4 => V::F32(floats[rng.below(floats.len())]),
        5 => V::F64(floats[rng.below(floats.len())] as f64),
        6 => V::Bool(int.is_multiple_of(2)),
        7 => V::U8(int as u8),
        8 => string(),
        9 => V::Array { elem: ValueType::I32, items: (0..rng.below(300)).map(|i| V::I32(i as i32 - 5)).collect() },
        10 => {
            let n = rng.below(300);
            V::Array {
                elem: ValueType::String,
                items: (0..n).map(|i| V::String(strs[i % strs.len()].to_string())).collect(),
            }
        }
        _ => V::Array { elem: ValueType::F32, items: (0..rng.below(300)).map(|i| V::F32(i as f32)).collect() },
    }
}

/// Keys a mutation may set that the valid file lacks.
const EXTRA_KEYS: [&str; 12] = [
    "llama.vocab_size",
    "llama.attention.key_length",
    "llama.attention.value_length",
    "llama.rope.dimension_count",
    "llama.rope.scaling.type",
    "llama.rope.scaling.factor",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.eom_token_id",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_space_prefix",
];

/// One structured corruption of the model.
fn mutate_model(rng: &mut Rng, m: &mut Model) {
    match rng.below(10) {
        0..=2 => {
            let i = rng.below(m.metadata.len());
            m.metadata[i].1 = hostile_value(rng);
        }
        3 => {
            let key = EXTRA_KEYS[rng.below(EXTRA_KEYS.len())];
            let value = hostile_value(rng);
            *m = std::mem::replace(m, Model { metadata: vec![], tensors: vec![] }).set(key, value);
        }
        4 => {
            let i = rng.below(m.metadata.len());
            m.metadata.remove(i);
        }
        5 => {
            // A tensor of another type, with data of that type's length.
            let types = [0, 1, 2, 3, 6, 7, 8, 9, 12, 14, 24, 25, 26, 27, 28, 30];
            let i = rng.below(m.tensors.len());
            let t = &mut m.tensors[i];
            t.type_id = types[rng.below(types.len())];
            t.data = (0..byte_len(t.type_id, &t.dims)).map(|_| rng.below(256) as u8).collect();
        }
        6 => {
            // Other dims, with data to match.
            let i = rng.below(m.tensors.len());
            let t = &mut m.tensors[i];
            match rng.below(4) {
                0 => t.dims.reverse(),
                1 => t.dims.push(1),
                2 => t.dims[0] *= 2,
                _ => {
                    let last = t.dims.len() - 1;
                    t.dims[last] = [1, 2, 3, 64, 264, 1000][rng.below(6)];
                }
            }
            t.data = (0..byte_len(t.type_id, &t.dims)).map(|_| rng.below(256) as u8).collect();
        }
        7 => {
            let i = rng.below(m.tensors.len());
            if rng.below(2) == 0 {
                m.tensors.remove(i);
            } else {
                let names = [
                    "output.weight",
                    "rope_freqs.weight",
                    "blk.0.attn_q.bias",
                    "blk.2.attn_q.weight",
                    "blk.0.attn_k.bias",
                ];
                m.tensors[i].name = names[rng.below(names.len())].to_string();
            }
        }
        8 => {
            // Random bytes in a tensor (NaN and infinities included).
            let i = rng.below(m.tensors.len());
            let t = &mut m.tensors[i];
            for _ in 0..1 + rng.below(8) {
                let j = rng.below(t.data.len());
                if let Some(b) = t.data.get_mut(j) {
                    *b = rng.below(256) as u8;
                }
            }
        }
        _ => {
            // Vocabulary, merges and token types of another length or content.
            let tokens: Vec<String> = match m.get("tokenizer.ggml.tokens") {
                Some(V::Array { items, .. }) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                _ => vocabulary(),
            };
            let mut tokens = tokens;
            match rng.below(4) {
                0 => tokens.truncate(rng.below(tokens.len() + 1)),
                1 => tokens.extend((0..rng.below(64)).map(|i| format!("x{i}"))),
                2 => {
                    let i = rng.below(tokens.len());
                    tokens[i] = ["", "<|im_end|>", "Ġ", "he", "\u{fffd}"][rng.below(5)].to_string();
                }
                _ => {
                    let merges: Vec<String> = (0..1 + rng.below(6))
                        .map(|_| ["h e", "he", "a b c", " ", "x y", "Ġ w", "l  l", "o r"][rng.below(8)].to_string())
                        .collect();
                    *m = std::mem::replace(m, Model { metadata: vec![], tensors: vec![] })
                        .set("tokenizer.ggml.merges", strings(&merges));
                    return;
                }
            }
            *m = std::mem::replace(m, Model { metadata: vec![], tensors: vec![] })
                .set("tokenizer.ggml.tokens", strings(&tokens));
        }
    }
}

/// One raw corruption of the bytes: bit flips or a length-like field set to
/// a boundary value in the metadata/tensor-info region (`..header_end`), a
/// span of it deleted or duplicated, or a truncation anywhere.
fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>, header_end: usize) {
    let header_end = header_end.min(b.len());
    if header_end < 16 {
        return;
    }
    match rng.below(5) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(header_end);
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(rng.below(b.len() + 1)),
        2 => {
            let values = [
                0,
                1,
                2,
                31,
                32,
                255,
                264,
                u32::MAX as u64,
                1 << 32,
                1 << 40,
                1 << 60,
                u64::MAX - 7,
                u64::MAX,
                rng.next(),
            ];
            let v = values[rng.below(values.len())];
            let i = rng.below(header_end - 8);
            let n = if rng.below(2) == 0 { 8 } else { 4 };
            b[i..i + n].copy_from_slice(&v.to_le_bytes()[..n]);
        }
        3 => {
            let i = rng.below(header_end);
            let n = rng.below(header_end - i + 1).min(64);
            b.drain(i..i + n);
        }
        _ => {
            let i = rng.below(header_end);
            let n = rng.below(header_end - i + 1).min(64);
            let span = b[i..i + n].to_vec();
            b.splice(i..i, span);
        }
    }
}

/// A mutation: 1–3 structured corruptions, then (sometimes) raw ones.
fn mutation(rng: &mut Rng, valid: &Model) -> Vec<u8> {
    let mut m = valid.clone();
    let structured = rng.below(4) != 0;
    if structured {
        for _ in 0..1 + rng.below(3) {
            mutate_model(rng, &mut m);
        }
    }
    let mut bytes = m.bytes();
    if !structured || rng.below(4) == 0 {
        let header_end = GgufFile::parse(&bytes).map(|f| f.data_offset() as usize).unwrap_or(bytes.len());
        for _ in 0..1 + rng.below(3) {
            mutate_bytes(rng, &mut bytes, header_end);
        }
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn seeded_mutations_never_panic_or_allocate_hugely() {
    let start = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutant.gguf");
    let valid = Model::valid();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut generated, mut generate_err, mut load_err) = (0, 0, 0);
    let mut failures = Vec::new();
    for i in 0..1500 {
        let bytes = mutation(&mut rng, &valid);
        let prompt = if i % 3 == 0 { Prompt::Chat(vec![ChatMessage::new("user", "hi")]) } else { text("hello world") };
        take_largest();
        let outcome = run(&path, &bytes, &prompt, 3);
        let largest = take_largest();
        match &outcome {
            Outcome::Generated(_) => generated += 1,
            Outcome::GenerateErr(_) => generate_err += 1,
            Outcome::LoadErr(_) => load_err += 1,
            Outcome::Panicked(m) => failures.push(format!("mutation {i} panicked: {m}\n  input: {}", hex(&bytes))),
        }
        if largest > ALLOCATION_LIMIT {
            failures.push(format!("mutation {i}: a {largest}-byte allocation ({})", summary(&outcome)));
        }
    }
    eprintln!(
        "1500 mutations: {generated} generated, {generate_err} failed in generation, {load_err} failed to load, in {:?}",
        start.elapsed()
    );
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(generated > 100 && load_err > 300, "too few of either kind: the mutations are not exercising the loader");
    assert!(start.elapsed().as_secs() < 60, "1500 loads took {:?}", start.elapsed());
}

/// Lying head widths and rotary dimensions are refused before the rotary
/// table is sized from them (they once allocated gigabytes, or aborted the
/// process, before the plausibility check ran).
#[test]
fn lying_rotary_sizes_are_refused_before_any_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rope.gguf");
    let v = Model::valid;
    let cases = [
        ("key_length 2^28", v().set("llama.attention.key_length", V::U32(1 << 28))),
        ("rope.dimension_count 2^28", v().set("llama.rope.dimension_count", V::U32(1 << 28))),
        ("embedding_length 2^29 (head width 2^28)", v().set("llama.embedding_length", V::U32(1 << 29))),
        ("rope.dimension_count u64::MAX", v().set("llama.rope.dimension_count", V::U64(u64::MAX))),
    ];
    let mut failures = Vec::new();
    for (what, model) in cases {
        take_largest();
        let outcome = run(&path, &model.bytes(), &text("hello"), 3);
        let largest = take_largest();
        match &outcome {
            Outcome::LoadErr(m) if m.contains("implausibly large") || m.contains("exceed") => {}
            other => failures.push(format!("{what}: {}", summary(other))),
        }
        if largest > ALLOCATION_LIMIT {
            failures.push(format!("{what}: a {largest}-byte allocation"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Writes the valid tiny model as a seed for the `llm_load` fuzz target:
/// `cargo test -p ipfs-accelerate-models --test llm_hostile_gguf -- --ignored write_fuzz_seed`.
#[test]
#[ignore = "writes the fuzz seed corpus; run by hand"]
fn write_fuzz_seed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/llm_load");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tiny-llama.gguf"), Model::valid().bytes()).unwrap();
}
