//! Text generation: decoder-only language models (Llama family, GPT-2),
//! their tokenizers and chat templates, the KV cache, sampling and
//! streaming.

pub mod chat_template;
pub mod detokenize;
pub mod tokenizer;
