//! Stop strings over streamed text: text that might be the start of a stop string is held back until it
//! is known not to be one.

/// Finds the first stop string in a stream of text pieces.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    /// The stop string found, once one is.
    matched: Option<usize>,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: Vec<String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
            matched: None,
        }
    }

    /// The stop string that ended the stream, if one did.
    pub fn matched(&self) -> Option<&str> {
        self.matched.map(|i| self.stops[i].as_str())
    }

    /// Feeds a piece; returns `(text safe to emit, stopped)`. Once stopped, the text before the stop
    /// string has been returned and the rest is dropped.
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        self.held.push_str(piece);
        // The earliest occurrence of any stop string (ties: the one listed first).
        if let Some((at, i)) = self
            .stops
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.held.find(s.as_str()).map(|at| (at, i)))
            .min()
        {
            let out = self.held[..at].to_string();
            self.held.clear();
            self.matched = Some(i);
            return (out, true);
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        (out, false)
    }

    /// The held-back text at the end of generation (no stop string came).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`, on char boundaries.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = text.len().min(stop.len().saturating_sub(1));
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop.is_char_boundary(n)
                && text.ends_with(&stop[..n])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_string_split_across_pieces_is_never_emitted() {
        let mut m = StopMatcher::new(vec!["\ndef".into()]);
        let mut out = String::new();
        let mut stopped = false;
        for p in ["x = 1", "\n", "de", "f foo"] {
            let (s, st) = m.push(p);
            out.push_str(&s);
            if st {
                stopped = true;
                break;
            }
        }
        assert!(stopped);
        assert_eq!(out, "x = 1");
    }

    #[test]
    fn held_text_is_released_when_it_cannot_match() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("abcE"), ("abc".to_string(), false));
        assert_eq!(m.push("x"), ("Ex".to_string(), false));
        assert_eq!(m.push("EN"), (String::new(), false));
        assert_eq!(m.finish(), "EN");
    }

    #[test]
    fn multibyte_text_is_split_on_char_boundaries() {
        let mut m = StopMatcher::new(vec!["éé".into()]);
        assert_eq!(m.push("aé"), ("a".to_string(), false));
        assert_eq!(m.push("b"), ("éb".to_string(), false));
    }
}
