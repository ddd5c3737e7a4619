//! Turning a window's timestamped tokens into segments, and how far the next
//! window starts — transformers' long-form rules.
//!
//! With timestamps a window decodes as `<|t0|> text <|t1|><|t1|> text <|t2|>
//! …`: a pair of consecutive timestamps closes one segment and opens the next.
//! When the window ends on such a pair, its last segment was complete and the
//! next window starts at that timestamp; when it ends on a single timestamp
//! (a segment started but not closed, or speech running to the window's end),
//! the whole window is consumed.

/// One stretch of text with its start and end, in seconds from the clip's
/// start.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSegment {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Its tokens, timestamps included.
    pub tokens: Vec<u32>,
}

/// Seconds per timestamp step (`<|0.02|>` is one step).
pub const TIME_PRECISION: f64 = 0.02;
/// Mel frames per timestamp step (the encoder halves the 10 ms frames).
pub const FRAMES_PER_STEP: usize = 2;
/// Seconds per mel frame.
pub const SECONDS_PER_FRAME: f64 = 0.01;

/// The segments of one window's generated tokens (end-of-text removed) and
/// the mel frames the window consumed. `seek` is the window's first frame,
/// `window_frames` the frames of audio it held (3000, fewer at the end).
pub fn split_window(
    generated: &[u32],
    timestamp_begin: u32,
    seek: usize,
    window_frames: usize,
) -> (Vec<TokenSegment>, usize) {
    let is_stamp = |id: u32| id >= timestamp_begin;
    let step = |id: u32| (id - timestamp_begin) as usize;
    let offset = seek as f64 * SECONDS_PER_FRAME;
    let at = |id: u32| offset + step(id) as f64 * TIME_PRECISION;
    let n = generated.len();
    let single_ending = n >= 2 && !is_stamp(generated[n - 2]) && is_stamp(generated[n - 1]);
    // Where a pair of timestamps splits the tokens: index of the second.
    let mut cuts: Vec<usize> = (1..n).filter(|&i| is_stamp(generated[i - 1]) && is_stamp(generated[i])).collect();
    let mut segments = Vec::new();
    if !cuts.is_empty() {
        if single_ending {
            cuts.push(n);
        } else if let Some(last) = cuts.last_mut() {
            // The final pair stays in the last segment, both timestamps.
            *last += 1;
        }
        let mut from = 0;
        for (k, &cut) in cuts.iter().enumerate() {
            let tokens = &generated[from..cut];
            from = cut;
            // A segment ends at its last token, except the one that keeps the
            // final pair: it ends at the first of the two.
            let closing_pair = k + 1 == cuts.len() && !single_ending;
            let end =
                if closing_pair && tokens.len() >= 2 { tokens[tokens.len() - 2] } else { tokens[tokens.len() - 1] };
            if !is_stamp(tokens[0]) || !is_stamp(end) || tokens.iter().all(|&t| is_stamp(t)) {
                continue; // no text, or not framed by timestamps
            }
            segments.push(TokenSegment { start: at(tokens[0]), end: at(end), tokens: tokens.to_vec() });
        }
        let consumed = if single_ending {
            window_frames
        } else {
            // The timestamp that closed the last complete segment.
            step(generated[from - 1]) * FRAMES_PER_STEP
        };
        // A window that ends where it began would be decoded again forever.
        let consumed = if consumed == 0 { window_frames } else { consumed };
        return (segments, consumed.min(window_frames.max(1)));
    }
    // No pair: one segment for everything, ending at the last timestamp if
    // there is a later one than the start, else at the window's end.
    let stamps: Vec<u32> = generated.iter().copied().filter(|&t| is_stamp(t)).collect();
    let end_steps = match stamps.last() {
        Some(&last) if last != timestamp_begin => step(last),
        _ => window_frames / FRAMES_PER_STEP,
    };
    if generated.iter().any(|&t| !is_stamp(t)) {
        let start = stamps.first().map_or(offset, |&s| at(s));
        segments.push(TokenSegment {
            start,
            end: offset + end_steps as f64 * TIME_PRECISION,
            tokens: generated.to_vec(),
        });
    }
    (segments, window_frames.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: u32 = 100; // <|0.00|>

    #[test]
    fn pairs_split_segments_and_the_next_window_starts_at_the_last_pair() {
        // <|0.00|> a b <|1.00|><|1.00|> c <|2.00|><|2.00|>
        let tokens = [B, 1, 2, B + 50, B + 50, 3, B + 100, B + 100];
        let (segments, consumed) = split_window(&tokens, B, 3000, 3000);
        assert_eq!(segments.len(), 2);
        assert!((segments[0].start - 30.0).abs() < 1e-9 && (segments[0].end - 31.0).abs() < 1e-9);
        assert_eq!(segments[0].tokens, vec![B, 1, 2, B + 50]);
        assert!((segments[1].start - 31.0).abs() < 1e-9 && (segments[1].end - 32.0).abs() < 1e-9);
        assert_eq!(segments[1].tokens, vec![B + 50, 3, B + 100, B + 100]);
        assert_eq!(consumed, 200);
    }

    #[test]
    fn a_single_timestamp_ending_consumes_the_window() {
        let tokens = [B, 1, B + 50, B + 50, 2, B + 80];
        let (segments, consumed) = split_window(&tokens, B, 0, 1700);
        assert_eq!(segments.len(), 2);
        assert!((segments[1].start - 1.0).abs() < 1e-9 && (segments[1].end - 1.6).abs() < 1e-9);
        assert_eq!(consumed, 1700);
    }

    #[test]
    fn without_pairs_one_segment_runs_to_the_last_timestamp() {
        let (segments, consumed) = split_window(&[B, 1, 2, B + 190], B, 0, 3000);
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].start, 0.0);
        assert!((segments[0].end - 3.8).abs() < 1e-9);
        assert_eq!(consumed, 3000);
        // Text only: the whole window.
        let (segments, _) = split_window(&[1, 2], B, 0, 3000);
        assert_eq!((segments[0].start, segments[0].end), (0.0, 30.0));
        // Nothing said: no segment, but the window is consumed.
        let (segments, consumed) = split_window(&[], B, 0, 3000);
        assert!(segments.is_empty());
        assert_eq!(consumed, 3000);
    }

    #[test]
    fn a_pair_at_zero_does_not_stall() {
        let (_, consumed) = split_window(&[B, B], B, 0, 3000);
        assert_eq!(consumed, 3000);
    }
}
