//! Helpers shared by the CLI's end-to-end tests.

use std::process::Output;

/// Asserts a failed run printed exactly one `error:` line containing `needle`
/// (never a panic or a backtrace) and exited non-zero.
pub fn assert_clear_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "expected {needle:?} in: {stderr}");
}
