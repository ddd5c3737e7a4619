//! SmolLM2-135M-Instruct's chat template, from its GGUF, renders
//! conversations exactly as transformers' `apply_chat_template` does
//! (goldens from scripts/make-tokenizer-goldens.py).

#[path = "common/smollm2.rs"]
mod smollm2;

use ipfs_accelerate_models::llm::chat_template::{ChatMessage, ChatTemplate};
use ipfs_accelerate_models::llm::tokenizer::LlmTokenizer;
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/goldens/smollm2-tokenizer.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn renders_like_transformers() {
    let tok = LlmTokenizer::from_gguf_path(
        &smollm2::smollm2_gguf().expect("the SmolLM2 GGUF is missing: run scripts/fetch-test-models.sh"),
    )
    .unwrap();
    let template = ChatTemplate::from_tokenizer(&tok).unwrap();
    let cases = golden()["chat"].as_array().unwrap().clone();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let messages: Vec<ChatMessage> = serde_json::from_value(case["messages"].clone()).unwrap();
        let gen = case["add_generation_prompt"].as_bool().unwrap();
        let rendered = template.render(&messages, gen).unwrap();
        assert_eq!(rendered, case["rendered"].as_str().unwrap(), "{} (add_generation_prompt {gen})", case["name"]);
        let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        assert_eq!(tok.encode(&rendered, false).unwrap(), want, "{}", case["name"]);
    }
}

#[test]
fn a_model_without_a_template_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let tok = LlmTokenizer::from_gguf_path(
        &smollm2::smollm2_gguf().expect("the SmolLM2 GGUF is missing: run scripts/fetch-test-models.sh"),
    )
    .unwrap();
    tok.inner().save(dir.path().join("tokenizer.json"), false).unwrap();
    let bare = LlmTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(bare.chat_template(), None);
    let e = ChatTemplate::from_tokenizer(&bare).unwrap_err().to_string();
    assert!(e.contains("no chat template") && e.contains("raw text") && e.contains("ChatML"), "{e}");
}

#[test]
fn special_token_variables_and_loop() {
    let src = "{{ bos_token }}{% for m in messages %}{{ loop.index }}/{{ loop.length }} {{ m['role'] }}: {{ m['content'] | trim }}{% if not loop.last %}\n{% endif %}{% endfor %}{% if add_generation_prompt %}{{ eos_token }}{% endif %}";
    let t = ChatTemplate::new(src).unwrap().with_special_tokens(Some("<s>"), Some("</s>"));
    let m = [ChatMessage::new("system", " be brief "), ChatMessage::new("user", "hi")];
    // trim_blocks eats the newline after `{% if %}`, as in transformers' Jinja2.
    assert_eq!(t.render(&m, true).unwrap(), "<s>1/2 system: be brief2/2 user: hi</s>");
    // Without the tokens the variables are undefined, which renders as nothing.
    let t = ChatTemplate::new(src).unwrap();
    assert_eq!(t.render(&m, false).unwrap(), "1/2 system: be brief2/2 user: hi");
}

#[test]
fn a_template_rejecting_the_conversation_is_an_error() {
    // The shape of Llama 2 / Mistral templates: roles must alternate.
    let src = "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{{ message['content'] }}{% endfor %}";
    let t = ChatTemplate::new(src).unwrap();
    let ok = [ChatMessage::new("user", "a"), ChatMessage::new("assistant", "b")];
    assert_eq!(t.render(&ok, false).unwrap(), "ab");
    let bad = [ChatMessage::new("user", "a"), ChatMessage::new("user", "b")];
    let e = t.render(&bad, false).unwrap_err().to_string();
    assert!(e.contains("roles must alternate"), "{e}");
}

#[test]
fn other_kinds_of_template_render_like_jinja2() {
    // Zephyr, Llama 3, Qwen 2.5 and Mistral shapes and one exercising tojson
    // options, namespace, filters, Python methods and {% generation %}, as
    // transformers renders them with SmolLM2's special tokens.
    let tok = LlmTokenizer::from_gguf_path(
        &smollm2::smollm2_gguf().expect("the SmolLM2 GGUF is missing: run scripts/fetch-test-models.sh"),
    )
    .unwrap();
    let g = golden();
    let mut failures = Vec::new();
    for case in g["templates"].as_array().unwrap() {
        let name = case["template"].as_str().unwrap();
        let source = g["template_sources"][name].as_str().unwrap();
        let conv = case["conversation"].as_str().unwrap();
        let messages: Vec<ChatMessage> = serde_json::from_value(g["conversations"][conv].clone()).unwrap();
        let gen = case["add_generation_prompt"].as_bool().unwrap();
        let t = ChatTemplate::new(source).unwrap().with_special_tokens(tok.bos_token(), tok.eos_token());
        match t.render(&messages, gen) {
            Ok(r) if r == case["rendered"].as_str().unwrap() => {}
            Ok(r) => failures.push(format!("{name} {conv} {gen}: got {r:?}, want {:?}", case["rendered"])),
            Err(e) => failures.push(format!("{name} {conv} {gen}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
