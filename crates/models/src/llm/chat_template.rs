//! Chat templates: the Jinja program a model ships (GGUF
//! `tokenizer.chat_template`, `tokenizer_config.json` `chat_template`) that
//! turns a conversation into the prompt text it was trained on.
//!
//! Rendered with minijinja configured as transformers' `apply_chat_template`
//! configures Jinja2: `trim_blocks` and `lstrip_blocks` on, Python string
//! methods (`.strip()`, `.startswith()`, `.items()`…), `raise_exception`,
//! a `tojson` that writes JSON as Python's `json.dumps` does (no HTML
//! escaping, `", "` and `": "` separators, `indent`, `separators`,
//! `sort_keys`, `ensure_ascii`), Jinja2's `truncate`, `strftime_now` (UTC:
//! transformers uses local time) and `{% generation %}` blocks (rendered as
//! plain blocks). The variables are `messages`, `add_generation_prompt`,
//! `bos_token`, `eos_token`, and `tools` and `documents` as none.

use crate::error::{Error, Result};
use crate::llm::tokenizer::LlmTokenizer;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Serde, ValueKind};
use minijinja::{context, Environment, ErrorKind, Value};
use serde::Serialize;
use std::fmt::Write as _;

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (a template may accept others).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with this role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }
}

/// A compiled chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("bos_token", &self.bos_token).field("eos_token", &self.eos_token).finish()
    }
}

/// A ChatML template (`<|im_start|>role\ncontent<|im_end|>\n`), for models
/// trained on ChatML that ship no template of their own.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const NAME: &str = "chat_template";

fn template_err(e: minijinja::Error) -> Error {
    // minijinja's alternate form adds the line and the source around it.
    let mut msg = format!("chat template: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let _ = write!(msg, ": {s}");
        source = s.source();
    }
    Error::Tokenizer(msg)
}

impl ChatTemplate {
    /// Compiles a Jinja chat template; a syntax error names its line.
    pub fn new(source: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(template_err)?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_filter("truncate", truncate);
        env.add_template_owned(NAME, without_generation_tags(source)).map_err(template_err)?;
        Ok(ChatTemplate { env, bos_token: None, eos_token: None })
    }

    /// The model's own template, with its BOS and EOS tokens. A model
    /// without one is an error that says what to do instead.
    pub fn from_tokenizer(tokenizer: &LlmTokenizer) -> Result<ChatTemplate> {
        let source = tokenizer.chat_template().ok_or_else(|| {
            Error::Tokenizer(
                "the model has no chat template (no tokenizer.chat_template in the GGUF, no chat_template in tokenizer_config.json): \
                 send the prompt as raw text instead of chat messages (the CLI's --no-chat), or use the ChatML template \
                 (ChatTemplate::chatml) if the model was trained on ChatML"
                    .to_string(),
            )
        })?;
        Ok(ChatTemplate::new(source)?.with_special_tokens(tokenizer.bos_token(), tokenizer.eos_token()))
    }

    /// The ChatML fallback (`<|im_start|>role\n…<|im_end|>\n`), used only
    /// when asked for: a model not trained on ChatML answers it poorly.
    pub fn chatml() -> ChatTemplate {
        // The constant is valid Jinja (a unit test renders it).
        ChatTemplate::new(CHATML).unwrap_or_else(|e| unreachable!("the ChatML template compiles: {e}"))
    }

    /// Sets the `bos_token` and `eos_token` variables (undefined when `None`).
    pub fn with_special_tokens(mut self, bos: Option<&str>, eos: Option<&str>) -> ChatTemplate {
        self.bos_token = bos.map(str::to_string);
        self.eos_token = eos.map(str::to_string);
        self
    }

    /// The prompt text for `messages`; `add_generation_prompt` appends the
    /// start of the assistant's turn so the model answers next.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let template = self.env.get_template(NAME).map_err(template_err)?;
        template
            .render(context! {
                messages => Value::from(Serde(messages)),
                // transformers passes these as None when the caller has none.
                tools => Value::from(()),
                documents => Value::from(()),
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token.as_deref().map_or(Value::UNDEFINED, Value::from),
                eos_token => self.eos_token.as_deref().map_or(Value::UNDEFINED, Value::from),
            })
            .map_err(template_err)
    }
}

/// The template with transformers' `{% generation %}…{% endgeneration %}`
/// tags (they only mark the assistant's text for training masks) turned
/// into `{% if true %}…{% endif %}`, which minijinja knows, keeping their
/// whitespace control (`{%-`, `-%}`).
fn without_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find("{%") {
        out.push_str(&rest[..at]);
        let tag = &rest[at + 2..];
        let (open, inner) = match tag.strip_prefix(['-', '+']) {
            Some(t) => (&tag[..1], t),
            None => ("", tag),
        };
        let body = inner.trim_start();
        let word = if body.starts_with("endgeneration") {
            Some(("endgeneration", "endif"))
        } else if body.starts_with("generation") {
            Some(("generation", "if true"))
        } else {
            None
        };
        if let Some((word, with)) = word {
            let after = body[word.len()..].trim_start();
            let close = if after.starts_with("-%}") || after.starts_with("+%}") {
                Some(&after[..1])
            } else if after.starts_with("%}") {
                Some("")
            } else {
                None
            };
            if let Some(close) = close {
                let _ = write!(out, "{{%{open} {with} {close}%}}");
                rest = &after[close.len() + 2..];
                continue;
            }
        }
        out.push_str("{%");
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    out
}

/// Jinja2's `truncate(length=255, killwords=False, end='...', leeway=5)`,
/// which minijinja lacks (contrib's takes keywords only): text within
/// `length + leeway` characters is kept whole, else it is cut at `length`
/// less `end`, back to a word boundary unless `killwords`.
fn truncate(
    s: String,
    length: Option<usize>,
    killwords: Option<bool>,
    end: Option<String>,
    kwargs: Kwargs,
) -> std::result::Result<String, minijinja::Error> {
    let length = match length {
        Some(l) => l,
        None => kwargs.get::<Option<usize>>("length")?.unwrap_or(255),
    };
    let killwords = match killwords {
        Some(k) => k,
        None => kwargs.get::<Option<bool>>("killwords")?.unwrap_or(false),
    };
    let end = match end {
        Some(e) => e,
        None => kwargs.get::<Option<String>>("end")?.unwrap_or_else(|| "...".to_string()),
    };
    let leeway = kwargs.get::<Option<usize>>("leeway")?.unwrap_or(5);
    kwargs.assert_all_used()?;
    let chars = s.chars().count();
    let end_len = end.chars().count();
    if length < end_len {
        return Err(minijinja::Error::new(ErrorKind::InvalidOperation, "truncate: length is shorter than end"));
    }
    if chars <= length + leeway {
        return Ok(s);
    }
    let head: String = s.chars().take(length - end_len).collect();
    if killwords {
        return Ok(head + &end);
    }
    let cut = head.rsplit_once(' ').map_or(head.as_str(), |(before, _)| before);
    Ok(cut.to_string() + &end)
}

/// `raise_exception(message)`: how templates reject a conversation (for
/// example roles that do not alternate).
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("the template rejected the conversation: {message}"),
    ))
}

/// `strftime_now(format)`: the current date and time (UTC), for templates
/// that state today's date (Llama 3.x).
fn strftime_now(format: String) -> std::result::Result<String, minijinja::Error> {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    strftime(&format, secs)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Python's `strftime` for the common directives, at `secs` after the Unix
/// epoch in UTC.
fn strftime(format: &str, secs: i64) -> std::result::Result<String, minijinja::Error> {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday.
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let d = chars.next().unwrap_or('%');
        let _ = match d {
            'Y' => write!(out, "{year}"),
            'y' => write!(out, "{:02}", year.rem_euclid(100)),
            'm' => write!(out, "{month:02}"),
            'd' => write!(out, "{day:02}"),
            'e' => write!(out, "{day:>2}"),
            'B' => write!(out, "{}", MONTHS[month as usize - 1]),
            'b' | 'h' => write!(out, "{}", &MONTHS[month as usize - 1][..3]),
            'A' => write!(out, "{}", DAYS[weekday]),
            'a' => write!(out, "{}", &DAYS[weekday][..3]),
            'H' => write!(out, "{h:02}"),
            'I' => write!(out, "{:02}", if h % 12 == 0 { 12 } else { h % 12 }),
            'p' => write!(out, "{}", if h < 12 { "AM" } else { "PM" }),
            'M' => write!(out, "{m:02}"),
            'S' => write!(out, "{s:02}"),
            'j' => write!(out, "{yday:03}"),
            'F' => write!(out, "{year}-{month:02}-{day:02}"),
            'T' => write!(out, "{h:02}:{m:02}:{s:02}"),
            'Z' => write!(out, "UTC"),
            'z' => write!(out, "+0000"),
            '%' => write!(out, "%"),
            other => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: the directive %{other} is not supported"),
                ))
            }
        };
    }
    Ok(out)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm for the proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False,
/// indent=None, separators=None, sort_keys=False)`, so keys keep their
/// order, nothing is HTML-escaped and the separators are Python's.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = match separators.as_deref() {
        Some([item, key]) => (item.clone(), key.clone()),
        Some(_) => {
            return Err(minijinja::Error::new(ErrorKind::InvalidOperation, "tojson: separators must be two strings"))
        }
        // Python's defaults: no space before a newline when indenting.
        None => (if indent.is_some() { "," } else { ", " }.to_string(), ": ".to_string()),
    };
    let style = JsonStyle {
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
        ensure_ascii: ensure_ascii.unwrap_or(false),
    };
    let mut out = String::new();
    write_json(&mut out, &value, &style, 0)?;
    Ok(Value::from_safe_string(out))
}

/// `json.dumps` options.
struct JsonStyle {
    indent: Option<usize>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

fn write_json(
    out: &mut String,
    v: &Value,
    style: &JsonStyle,
    depth: usize,
) -> std::result::Result<(), minijinja::Error> {
    let indent = style.indent;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * depth));
        }
    };
    let item_sep = style.item_sep.as_str();
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let Some(i) = v.as_i64().filter(|_| v.is_integer()) {
                let _ = write!(out, "{i}");
            } else {
                let f = f64::try_from(v.clone())?;
                if f.is_finite() {
                    // Python writes floats with a fraction: 1.0, not 1.
                    let _ = write!(out, "{f:?}");
                } else {
                    out.push_str(if f.is_nan() {
                        "NaN"
                    } else if f > 0.0 {
                        "Infinity"
                    } else {
                        "-Infinity"
                    });
                }
            }
        }
        ValueKind::String | ValueKind::Plain => write_json_str(out, &v.to_string(), style.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(out, item, style, depth + 1)?;
            }
            newline(out, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if style.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json_str(out, &key.to_string(), style.ensure_ascii);
                out.push_str(&style.key_sep);
                write_json(out, &v.get_item(key)?, style, depth + 1)?;
            }
            newline(out, depth);
            out.push('}');
        }
        other => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson cannot write a value of kind {other}"),
            ))
        }
    }
    Ok(())
}

/// A JSON string as Python's `json.dumps` writes it; `ensure_ascii`
/// escapes everything past ASCII as `\uXXXX` (UTF-16, so surrogate pairs).
fn write_json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_renders() {
        let t = ChatTemplate::chatml();
        let m = [ChatMessage::new("user", "hi")];
        assert_eq!(t.render(&m, true).unwrap(), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
        assert_eq!(t.render(&m, false).unwrap(), "<|im_start|>user\nhi<|im_end|>\n");
    }

    #[test]
    fn tojson_is_pythons() {
        let t = ChatTemplate::new("{{ x | tojson }}|{{ x | tojson(indent=2) }}").unwrap();
        let tmpl = t.env.get_template(NAME).unwrap();
        let x = serde_json::json!({"b": [1, 2.5, "<é>\n"], "a": null, "c": {}});
        let out = tmpl.render(context! { x => Value::from(Serde(&x)) }).unwrap();
        // serde_json's map is ordered by key here; Python keeps insertion
        // order, which minijinja values built by a template keep too.
        assert_eq!(
            out,
            "{\"a\": null, \"b\": [1, 2.5, \"<é>\\n\"], \"c\": {}}|{\n  \"a\": null,\n  \"b\": [\n    1,\n    2.5,\n    \"<é>\\n\"\n  ],\n  \"c\": {}\n}"
        );
    }

    #[test]
    fn python_methods_and_trim_blocks() {
        let src = "{% for m in messages %}\n  {% if m.content.startswith('x') %}{{ m.content.strip() | upper }}{% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(src).unwrap();
        let out = t.render(&[ChatMessage::new("user", "x y "), ChatMessage::new("user", "no")], false).unwrap();
        // As Jinja2 with trim_blocks and lstrip_blocks renders it.
        assert_eq!(out, "X Y");
    }

    #[test]
    fn truncate_is_jinja2s() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{{ m.content|truncate(9) }}|{{ m.content|truncate(length=11, end='~') }}|{{ 'short'|truncate(3, end='') }}{% endfor %}",
        )
        .unwrap();
        // As Jinja2 3.1 renders it.
        assert_eq!(
            t.render(&[ChatMessage::new("user", "hello world foo bar baz")], false).unwrap(),
            "hello...|hello~|short"
        );
    }

    #[test]
    fn generation_tags_become_plain_blocks() {
        assert_eq!(
            without_generation_tags(
                "a{%- generation -%} b {% endgeneration %}c{% if x %}{%+generation+%}{%endgeneration%}{{ '{%' }}"
            ),
            "a{%- if true -%} b {% endif %}c{% if x %}{%+ if true +%}{% endif %}{{ '{%' }}"
        );
    }

    #[test]
    fn raise_exception_is_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}").unwrap();
        let e = t.render(&[], false).unwrap_err().to_string();
        assert!(e.contains("roles must alternate"), "{e}");
    }

    #[test]
    fn syntax_error_is_an_error() {
        let e = ChatTemplate::new("{% for m in messages %}").unwrap_err().to_string();
        assert!(e.starts_with("tokenizer: chat template:"), "{e}");
    }

    #[test]
    fn strftime_formats_dates() {
        // 2024-07-26 13:25:09 UTC, a Friday.
        let t = 1_722_000_000 + 309;
        assert_eq!(strftime("%d %b %Y", t).unwrap(), "26 Jul 2024");
        assert_eq!(strftime("%A %B %e %H:%M:%S %j %%", t).unwrap(), "Friday July 26 13:25:09 208 %");
        assert_eq!(strftime("%Y-%m-%d", 0).unwrap(), "1970-01-01");
        assert_eq!(strftime("%F", 951_782_400).unwrap(), "2000-02-29");
        assert!(strftime("%Q", 0).is_err());
    }
}
