//! Aligned plain-text tables for the commands that print rows.

/// `rows` under `header`, columns padded to their widest cell; the first
/// `text_columns` columns are left-aligned (names), the rest right-aligned
/// (numbers). Trailing spaces are trimmed.
pub fn render(header: &[&str], rows: &[Vec<String>], text_columns: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = w.saturating_sub(cell.chars().count());
            if i < text_columns {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            } else {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_left_numbers_right() {
        let rows = vec![vec!["a".to_string(), "1".into()], vec!["long name".into(), "22".into()]];
        let text = super::render(&["model", "n"], &rows, 1);
        assert_eq!(text, "model       n\na           1\nlong name  22\n");
    }
}
