//! The tokenizer of a decoder-only language model, built either from a GGUF
//! file's metadata (which has no `tokenizer.json`) or from a Hugging Face
//! model directory (`tokenizer.json`, `tokenizer_config.json`,
//! `generation_config.json`).
//!
//! A GGUF stores the vocabulary, the merges, the token types and the special
//! token ids under llama.cpp's key names; [`LlmTokenizer::from_gguf`] turns
//! them back into a `tokenizers::Tokenizer` the way transformers' GGUF loader
//! does (`transformers/integrations/gguf/gguf_tokenizer_mapping.py`), with
//! one deliberate difference: the pre-tokenizer follows the regexes llama.cpp
//! uses for `tokenizer.ggml.pre` (`llama-vocab.cpp`), which are those of the
//! model's own `tokenizer.json`. transformers knows no `smollm` entry and
//! falls back to GPT-2's split, which differs from the model's own
//! tokenizer (digits split off first) where whitespace runs into a digit
//! (`"\n\n1."`, indented code, `" ²"`).

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::Replace;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// GPT-2's split, which `ByteLevel(use_regex = true)` applies by itself.
const GPT2_SPLIT: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's split (tiktoken cl100k), also used by Falcon 3, DBRX, Smaug…
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen 2's split: Llama 3's with single digits.
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Mistral's tekken split.
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-4o's split (o200k), also Llama 4's.
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF `tokenizer.ggml.token_type` of a control token (`<|im_start|>`).
const TOKEN_TYPE_CONTROL: i64 = 3;
/// GGUF `tokenizer.ggml.token_type` of a user-defined added token (`<think>`).
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// A language model's tokenizer with what generation needs around it: the
/// special token ids, whether a BOS is prepended, and the chat template.
pub struct LlmTokenizer {
    inner: Tokenizer,
    bos_id: Option<u32>,
    eos_ids: Vec<u32>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    /// Whether [`LlmTokenizer::encode`] prepends BOS itself (GGUF). A
    /// `tokenizer.json` carries its own post-processor for that instead.
    prepend_bos: bool,
    /// Whether [`LlmTokenizer::encode`] appends EOS itself (GGUF).
    append_eos: bool,
    add_bos: bool,
    chat_template: Option<String>,
    special_ids: HashSet<u32>,
    /// Cached: `Tokenizer::get_vocab_size(true)` builds the whole vocabulary
    /// map on every call, far too slow for a check on each decode.
    vocab_size: usize,
}

impl std::fmt::Debug for LlmTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos_id", &self.bos_id)
            .field("eos_ids", &self.eos_ids)
            .field("add_bos", &self.add_bos)
            .field("has_chat_template", &self.chat_template.is_some())
            .finish()
    }
}

fn tok_err(what: impl std::fmt::Display) -> Error {
    Error::Tokenizer(what.to_string())
}

impl LlmTokenizer {
    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`).
    ///
    /// Supported `tokenizer.ggml.model` values: `gpt2` (byte-level BPE:
    /// Llama 3, Qwen, SmolLM, GPT-2…) and `llama` (SentencePiece-style BPE
    /// with byte fallback: Llama 2, TinyLlama, Mistral…).
    pub fn from_gguf(gguf: &GgufFile) -> Result<LlmTokenizer> {
        let model = gguf.get_str("tokenizer.ggml.model").ok_or_else(|| {
            tok_err("the GGUF file has no tokenizer.ggml.model: it carries no tokenizer; use a model directory with tokenizer.json")
        })?;
        let tokens = gguf
            .get_str_array("tokenizer.ggml.tokens")
            .ok_or_else(|| tok_err("the GGUF file has no tokenizer.ggml.tokens string array"))?;
        let token_types: Vec<i64> = match gguf.get_array("tokenizer.ggml.token_type") {
            Some(a) => a.iter().map(|v| v.as_i64().unwrap_or(1)).collect(),
            None => Vec::new(),
        };
        let merges = match gguf.get_str_array("tokenizer.ggml.merges") {
            Some(m) => Some(parse_merges(&m)?),
            None => None,
        };
        let id = |key: &str| -> Result<Option<u32>> {
            match gguf.get_u32(key).or_else(|| gguf.get_i64(key).and_then(|v| u32::try_from(v).ok())) {
                Some(id) if (id as usize) < tokens.len() => Ok(Some(id)),
                Some(id) => Err(tok_err(format!("{key} = {id} is outside the vocabulary of {} tokens", tokens.len()))),
                None => Ok(None),
            }
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?;
        let unk = id("tokenizer.ggml.unknown_token_id")?;
        // llama.cpp also stops at an end-of-turn / end-of-message token when
        // the file names one that differs from EOS.
        let eot = id("tokenizer.ggml.eot_token_id")?;
        let eom = id("tokenizer.ggml.eom_token_id")?;

        let scores: Vec<f64> = match gguf.get_array("tokenizer.ggml.scores") {
            Some(a) => a.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect(),
            None => Vec::new(),
        };
        let (mut inner, default_add_bos) = match model {
            "gpt2" => (byte_level_bpe(&tokens, merges, &scores, gguf.get_str("tokenizer.ggml.pre"))?, false),
            "llama" => {
                let unk_token = unk.map(|u| tokens[u as usize].to_string());
                let prefix_space = gguf.get_bool("tokenizer.ggml.add_space_prefix").unwrap_or(true);
                (sentencepiece_bpe(&tokens, merges, &scores, unk_token, prefix_space)?, true)
            }
            other => {
                return Err(tok_err(format!(
                    "the GGUF tokenizer model {other:?} is not supported: supported are \"gpt2\" (byte-level BPE) and \"llama\" (SentencePiece BPE)"
                )))
            }
        };

        // Control tokens are matched whole and are special (skipped when
        // decoding with skip_special); user-defined ones are matched whole
        // but decode as text, as transformers' add_gguf_special_tokens does.
        let byte_level = model == "gpt2";
        let mut special = Vec::new();
        let mut user = Vec::new();
        for (i, (tok, ty)) in tokens.iter().zip(token_types.iter()).enumerate() {
            if *ty == TOKEN_TYPE_CONTROL && (!byte_level || is_byte_level_spelled(tok)) {
                special.push((i as u32, AddedToken::from(tok.to_string(), true).normalized(false)));
            } else if *ty == TOKEN_TYPE_USER_DEFINED {
                user.push(AddedToken::from(tok.to_string(), false).normalized(false));
            }
        }
        let special_ids: HashSet<u32> = special.iter().map(|(i, _)| *i).collect();
        let special_tokens: Vec<AddedToken> = special.into_iter().map(|(_, t)| t).collect();
        inner.add_special_tokens(&special_tokens);
        inner.add_tokens(&user);

        let add_bos = gguf.get_bool("tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos);
        let add_eos = gguf.get_bool("tokenizer.ggml.add_eos_token").unwrap_or(false);
        let mut eos_ids = Vec::new();
        for id in [eos, eot, eom].into_iter().flatten() {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        let name = |id: Option<u32>| id.map(|i| tokens[i as usize].to_string());
        Ok(LlmTokenizer {
            bos_id: bos,
            eos_ids,
            bos_token: name(bos),
            eos_token: name(eos),
            prepend_bos: add_bos && bos.is_some(),
            append_eos: add_eos && eos.is_some(),
            add_bos,
            chat_template: gguf.get_str("tokenizer.chat_template").map(str::to_string),
            special_ids,
            // The model's logits have one entry per GGUF token, even where
            // two tokens share a spelling.
            vocab_size: tokens.len().max(inner.get_vocab_size(true)),
            inner,
        })
    }

    /// Opens a GGUF file and builds its tokenizer ([`LlmTokenizer::from_gguf`]).
    pub fn from_gguf_path(path: &Path) -> Result<LlmTokenizer> {
        LlmTokenizer::from_gguf(&GgufFile::open(path)?)
    }

    /// Loads the tokenizer of a Hugging Face model directory: `tokenizer.json`
    /// (required), `tokenizer_config.json` (BOS/EOS tokens, `add_bos_token`,
    /// `chat_template` as a string or a list of named templates, of which
    /// `default` or else the first is used), `chat_template.jinja` (newer
    /// repositories keep the template there) and `generation_config.json`
    /// (`eos_token_id`, a number or a list).
    ///
    /// [`LlmTokenizer::eos_ids`] is the union of the configured EOS token and
    /// `generation_config.json`'s list, which is where instruct models name
    /// their end-of-turn tokens.
    pub fn from_dir(dir: &Path) -> Result<LlmTokenizer> {
        if !dir.is_dir() {
            return Err(Error::ModelDirMissing(dir.to_path_buf()));
        }
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::MissingFile {
                path,
                hint: "the model needs its tokenizer.json (save it with the model's tokenizer.save_pretrained)",
            });
        }
        let inner = Tokenizer::from_file(&path)
            .map_err(|e| tok_err(format!("{} is not a valid tokenizer.json: {e}", path.display())))?;
        let config = read_json(&dir.join("tokenizer_config.json"), "tokenizer_config.json")?;
        let generation = read_json(&dir.join("generation_config.json"), "generation_config.json")?;

        let token_field = |key: &str| -> Option<String> {
            let v = config.as_ref()?.get(key)?;
            // Either "<s>" or an AddedToken object {"content": "<s>", ...}.
            v.as_str().or_else(|| v.get("content").and_then(|c| c.as_str())).map(str::to_string)
        };
        let bos_token = token_field("bos_token");
        let eos_token = token_field("eos_token");
        let bos_id = bos_token.as_deref().and_then(|t| inner.token_to_id(t));
        let mut eos_ids = Vec::new();
        if let Some(id) = eos_token.as_deref().and_then(|t| inner.token_to_id(t)) {
            eos_ids.push(id);
        }
        if let Some(v) = generation.as_ref().and_then(|g| g.get("eos_token_id")) {
            let list: Vec<&serde_json::Value> = match v.as_array() {
                Some(a) => a.iter().collect(),
                None => vec![v],
            };
            for id in list.into_iter().filter_map(|x| x.as_u64()).filter_map(|x| u32::try_from(x).ok()) {
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }
        let add_bos =
            config.as_ref().and_then(|c| c.get("add_bos_token")).and_then(|v| v.as_bool()).unwrap_or_else(|| {
                // No flag: the post-processor decides; report what it does.
                bos_id.is_some_and(|b| inner.encode("a", true).is_ok_and(|e| e.get_ids().first() == Some(&b)))
            });

        let jinja = dir.join("chat_template.jinja");
        let chat_template = if jinja.exists() {
            Some(
                String::from_utf8(crate::error::read_file(&jinja)?)
                    .map_err(|_| tok_err(format!("{} is not UTF-8 text", jinja.display())))?,
            )
        } else {
            config.as_ref().and_then(|c| c.get("chat_template")).and_then(pick_template)
        };
        let special_ids =
            inner.get_added_tokens_decoder().into_iter().filter(|(_, t)| t.special).map(|(id, _)| id).collect();
        Ok(LlmTokenizer {
            vocab_size: inner.get_vocab_size(true),
            inner,
            bos_id,
            eos_ids,
            bos_token,
            eos_token,
            prepend_bos: false,
            append_eos: false,
            add_bos,
            chat_template,
            special_ids,
        })
    }

    /// Token ids of `text`. Special tokens written in the text
    /// (`<|im_start|>`) always become their single ids; `add_special` adds
    /// the model's BOS (and EOS) when its configuration asks for them, as
    /// transformers' `encode(text, add_special_tokens=...)` does.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, add_special).map_err(|e| tok_err(format!("cannot encode text: {e}")))?;
        let mut ids = Vec::with_capacity(enc.len() + 2);
        if add_special && self.prepend_bos {
            ids.extend(self.bos_id);
        }
        ids.extend_from_slice(enc.get_ids());
        if add_special && self.append_eos {
            ids.extend(self.eos_ids.first());
        }
        Ok(ids)
    }

    /// Text of `ids`; `skip_special` leaves out special (control) tokens.
    /// Bytes that do not form valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size()) {
            return Err(tok_err(format!("token id {bad} is outside the vocabulary of {} tokens", self.vocab_size())));
        }
        self.inner.decode(ids, skip_special).map_err(|e| tok_err(format!("cannot decode tokens: {e}")))
    }

    /// The BOS token id, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// Token ids that end generation: the configured EOS, then the
    /// end-of-turn ids (`generation_config.json`'s `eos_token_id` list, or a
    /// GGUF's `eot_token_id`/`eom_token_id`), without repeats. Empty when the
    /// model names none.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Whether [`LlmTokenizer::encode`] with `add_special` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The BOS token's text (`<|im_start|>`, `<s>`), for chat templates.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// The EOS token's text (`<|im_end|>`, `</s>`), for chat templates.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// The token's spelling in the vocabulary (byte-level tokens in GPT-2's
    /// byte alphabet, e.g. `Ġhello`), or `None` past the vocabulary.
    pub fn token_str(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Id of a token spelled as in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of token ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The model's Jinja chat template, if it ships one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Whether `id` is a special (control) token, which
    /// `decode(ids, skip_special = true)` leaves out.
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// Reads an optional JSON file: `None` when it does not exist.
fn read_json(path: &Path, what: &'static str) -> Result<Option<serde_json::Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = crate::error::read_file(path)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        what,
        message: e.to_string(),
    })
}

/// `chat_template` of a `tokenizer_config.json`: a string, or a list of
/// `{"name", "template"}` of which transformers uses `default`.
fn pick_template(v: &serde_json::Value) -> Option<String> {
    if let Some(s) = v.as_str() {
        return Some(s.to_string());
    }
    let list = v.as_array()?;
    let named = |n: &serde_json::Value| n.get("template").and_then(|t| t.as_str()).map(str::to_string);
    list.iter()
        .find(|n| n.get("name").and_then(|x| x.as_str()) == Some("default"))
        .and_then(named)
        .or_else(|| list.first().and_then(named))
}

fn parse_merges(merges: &[&str]) -> Result<Vec<(String, String)>> {
    merges
        .iter()
        .map(|m| {
            m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| {
                tok_err(format!("tokenizer.ggml.merges entry {m:?} is not two tokens separated by a space"))
            })
        })
        .collect()
}

/// GPT-2's map from bytes to printable characters (`bytes_to_unicode`):
/// printable Latin-1 bytes stand for themselves, the rest are shifted to
/// U+0100 and up, so a space is `Ġ` and a newline `Ċ`.
fn bytes_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        map[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\u{FFFD}');
            next += 1;
            c
        };
    }
    map
}

fn is_byte_level_spelled(token: &str) -> bool {
    let alphabet = bytes_to_unicode();
    token.chars().all(|c| alphabet.contains(&c))
}

/// The pre-tokenizer for a GGUF `tokenizer.ggml.pre` name: llama.cpp's
/// regexes for that name, applied one after another, then the byte-level
/// mapping. Unknown names get GPT-2's split, as in llama.cpp and
/// transformers.
fn byte_level_pre_tokenizer(pre: Option<&str>) -> Result<PreTokenizerWrapper> {
    let splits: &[&str] = match pre.unwrap_or("default") {
        // Digits one by one before GPT-2's split: what these models' own
        // tokenizer.json does with Digits(individual_digits) + ByteLevel.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            &[r"\p{N}", GPT2_SPLIT]
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2" | "dbrx"
        | "smaug-bpe" => &[LLAMA3_SPLIT],
        "qwen2" | "deepseek-r1-qwen" | "megrez" => &[QWEN2_SPLIT],
        "tekken" => &[TEKKEN_SPLIT],
        "gpt-4o" | "llama4" => &[GPT4O_SPLIT],
        "default" | "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais" => &[GPT2_SPLIT],
        other => {
            tracing::warn!("GGUF pre-tokenizer {other:?} is not known here; splitting text as GPT-2 does");
            &[GPT2_SPLIT]
        }
    };
    let mut seq: Vec<PreTokenizerWrapper> = Vec::new();
    for re in splits {
        let split = Split::new(SplitPattern::Regex((*re).to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| tok_err(format!("pre-tokenizer regex {re:?}: {e}")))?;
        seq.push(split.into());
    }
    seq.push(ByteLevel::new(false, true, false).into());
    Ok(PreSequence::new(seq).into())
}

fn byte_level_bpe(
    tokens: &[&str],
    merges: Option<Vec<(String, String)>>,
    scores: &[f64],
    pre: Option<&str>,
) -> Result<Tokenizer> {
    let alphabet = bytes_to_unicode();
    // A token spelled outside the byte alphabet (some converters write
    // added tokens as plain UTF-8) is respelled byte by byte, as
    // transformers' byte_level_tokenizer does.
    let spelled: Vec<String> = tokens
        .iter()
        .map(|t| {
            if t.chars().all(|c| alphabet.contains(&c)) {
                t.to_string()
            } else {
                t.bytes().map(|b| alphabet[b as usize]).collect()
            }
        })
        .collect();
    let vocab: HashMap<String, u32> = spelled.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let merges = match merges {
        Some(m) => m,
        None if scores.len() == tokens.len() => generate_merges(&spelled, &vocab, Some(scores)),
        None => generate_merges(&spelled, &vocab, None),
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges)
        .build()
        .map_err(|e| tok_err(format!("cannot build the BPE model from the GGUF vocabulary: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(byte_level_pre_tokenizer(pre)?));
    tok.with_decoder(Some(ByteLevelDecoder::new(true, true, true)));
    Ok(tok)
}

/// SentencePiece-style BPE as transformers' `LlamaTokenizer` builds it:
/// `▁` for spaces, one prepended to the first word unless the file's
/// `tokenizer.ggml.add_space_prefix` is false, byte fallback for bytes the
/// vocabulary lacks (`<0x0A>`), merges from the file or derived from the
/// token scores.
fn sentencepiece_bpe(
    tokens: &[&str],
    merges: Option<Vec<(String, String)>>,
    scores: &[f64],
    unk: Option<String>,
    prefix_space: bool,
) -> Result<Tokenizer> {
    let owned: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    let vocab: HashMap<String, u32> = owned.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let merges = match merges {
        Some(m) => m,
        None if scores.len() == tokens.len() => generate_merges(&owned, &vocab, Some(scores)),
        None => {
            return Err(tok_err(
                "the GGUF file has neither tokenizer.ggml.merges nor one tokenizer.ggml.scores entry per token",
            ))
        }
    };
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk);
    }
    let bpe =
        builder.build().map_err(|e| tok_err(format!("cannot build the BPE model from the GGUF vocabulary: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    let scheme = if prefix_space { PrependScheme::First } else { PrependScheme::Never };
    tok.with_pre_tokenizer(Some(Metaspace::new('▁', scheme, false)));
    let replace = Replace::new("▁", " ").map_err(tok_err)?;
    let mut decoders: Vec<DecoderWrapper> = vec![replace.into(), ByteFallback::new().into(), Fuse::new().into()];
    if prefix_space {
        // Take back the space the pre-tokenizer put before the first word.
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tok)
}

/// Merges implied by a vocabulary, as transformers' `generate_merges`:
/// every split of a token into two tokens of the vocabulary, ordered by the
/// merged token's key: its score, highest first, when `scores` is given,
/// else its id, lowest first. Ties keep Python's stable order: tokens in
/// vocabulary order, each one's splits by the ids of their pieces.
fn generate_merges(tokens: &[String], vocab: &HashMap<String, u32>, scores: Option<&[f64]>) -> Vec<(String, String)> {
    let mut seen = HashSet::new();
    let mut merges: Vec<(String, String, f64)> = Vec::new();
    for (i, merged) in tokens.iter().enumerate() {
        // A Python dict keeps a repeated token at its first position.
        if !seen.insert(merged.as_str()) {
            continue;
        }
        let key = match scores {
            Some(s) => s.get(i).copied().unwrap_or(0.0),
            None => f64::from(vocab.get(merged).copied().unwrap_or(i as u32)),
        };
        let mut local = Vec::new();
        for (split, _) in merged.char_indices().skip(1) {
            let (l, r) = merged.split_at(split);
            if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                local.push((li, ri, l.to_string(), r.to_string()));
            }
        }
        local.sort_by_key(|&(li, ri, _, _)| (li, ri));
        merges.extend(local.into_iter().map(|(_, _, l, r)| (l, r, key)));
    }
    let descending = scores.is_some();
    // Stable, like Python's sorted (also with reverse=True).
    merges.sort_by(|a, b| {
        let ka = (a.2, a.0.chars().count(), a.1.chars().count());
        let kb = (b.2, b.0.chars().count(), b.1.chars().count());
        let ord = ka.partial_cmp(&kb).unwrap_or(std::cmp::Ordering::Equal);
        if descending {
            ord.reverse()
        } else {
            ord
        }
    });
    merges.into_iter().map(|(l, r, _)| (l, r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_matches_gpt2() {
        let m = bytes_to_unicode();
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
        assert_eq!(m[b'a' as usize], 'a');
        let distinct: HashSet<char> = m.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn template_list_prefers_default() {
        let v = serde_json::json!([{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]);
        assert_eq!(pick_template(&v).as_deref(), Some("D"));
        let v = serde_json::json!([{"name": "rag", "template": "R"}]);
        assert_eq!(pick_template(&v).as_deref(), Some("R"));
        assert_eq!(pick_template(&serde_json::json!("S")).as_deref(), Some("S"));
    }

    #[test]
    fn malformed_merge_is_an_error() {
        assert!(parse_merges(&["a b", "ab"]).is_err());
    }
}
