//! Stop sequences on streamed text: text is released only once it can no
//! longer be the start of a stop sequence, so a client never sees part of
//! a stop string that is then taken back.

/// Watches generated text for stop strings.
#[derive(Clone, Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet released.
    pending: String,
}

/// What [`StopMatcher::push`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// Text safe to release now (may be empty).
    Continue(String),
    /// A stop string was found: the text before it, to release last.
    Stopped(String),
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        StopMatcher { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), pending: String::new() }
    }

    /// Adds newly decoded text.
    pub fn push(&mut self, text: &str) -> StopOutcome {
        self.pending.push_str(text);
        if self.stops.is_empty() {
            return StopOutcome::Continue(std::mem::take(&mut self.pending));
        }
        // The earliest stop string wins.
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let before = self.pending[..at].to_string();
            self.pending.clear();
            return StopOutcome::Stopped(before);
        }
        // Hold back the longest tail that begins some stop string.
        let hold = self.held_tail();
        let release = self.pending.len() - hold;
        let out = self.pending[..release].to_string();
        self.pending.drain(..release);
        StopOutcome::Continue(out)
    }

    /// The text still held back (released at the end of a generation that
    /// did not stop on a stop string).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Bytes at the end of `pending` that are a proper prefix of a stop
    /// string (always on a character boundary).
    fn held_tail(&self) -> usize {
        let mut longest = 0;
        for stop in &self.stops {
            let most = stop.len().saturating_sub(1).min(self.pending.len());
            for len in (longest + 1..=most).rev() {
                let start = self.pending.len() - len;
                if self.pending.is_char_boundary(start) && stop.starts_with(&self.pending[start..]) {
                    longest = len;
                    break;
                }
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn text_that_may_start_a_stop_is_held_back() {
        let mut m = StopMatcher::new(&stops(&["\nUser:"]));
        assert_eq!(m.push("Hello"), StopOutcome::Continue("Hello".into()));
        assert_eq!(m.push(" there\nUs"), StopOutcome::Continue(" there".into()));
        // Not the stop after all: released.
        assert_eq!(m.push("ually"), StopOutcome::Continue("\nUsually".into()));
        assert_eq!(m.push("\nUser: hi"), StopOutcome::Stopped(String::new()));
    }

    #[test]
    fn the_earliest_stop_wins_and_the_rest_is_flushed_at_the_end() {
        let mut m = StopMatcher::new(&stops(&["END", "."]));
        assert_eq!(m.push("one. two END"), StopOutcome::Stopped("one".into()));
        let mut m = StopMatcher::new(&stops(&["END"]));
        assert_eq!(m.push("café E"), StopOutcome::Continue("café ".into()));
        assert_eq!(m.finish(), "E");
    }

    #[test]
    fn no_stops_release_everything() {
        let mut m = StopMatcher::new(&stops(&[""]));
        assert_eq!(m.push("é"), StopOutcome::Continue("é".into()));
    }
}
