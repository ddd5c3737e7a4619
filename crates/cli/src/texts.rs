//! Reading input texts from arguments or standard input.

use anyhow::{bail, Context, Result};
use std::io::BufRead;

/// The texts to process: the arguments, or, when the only argument is `-`,
/// one text per line of standard input.
pub fn collect(args: &[String]) -> Result<Vec<String>> {
    let texts = if args.len() == 1 && args[0] == "-" {
        std::io::stdin().lock().lines().collect::<Result<Vec<_>, _>>().context("cannot read texts from stdin")?
    } else {
        args.to_vec()
    };
    if texts.is_empty() {
        bail!("no input texts were given: pass texts as arguments, or `-` to read one text per line from stdin");
    }
    Ok(texts)
}
