//! Stop strings, matched across token boundaries. Text that could still become the start of a
//! stop string is held back; once it cannot, it is released. On a match, the text before the
//! stop string is released and the stop string itself never is.

#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What one push released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub text: String,
    /// A stop string matched: `text` ends where it began, and the stream is over.
    pub stopped: bool,
}

impl StopMatcher {
    /// Empty strings are ignored (they would match before any text).
    pub fn new(stops: &[String]) -> StopMatcher {
        StopMatcher { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), held: String::new() }
    }

    pub fn push(&mut self, text: &str) -> Released {
        self.held.push_str(text);
        // The earliest match wins: nothing after it may be released.
        let first = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = first {
            let text = self.held[..at].to_string();
            self.held.clear();
            return Released { text, stopped: true };
        }
        // Everything before the earliest suffix that is a prefix of a stop string is safe.
        let keep_from = (0..self.held.len())
            .filter(|&i| self.held.is_char_boundary(i))
            .find(|&i| self.stops.iter().any(|s| s.starts_with(&self.held[i..])))
            .unwrap_or(self.held.len());
        let text = self.held[..keep_from].to_string();
        self.held.drain(..keep_from);
        Released { text, stopped: false }
    }

    /// Ends the stream: releases the held text (no stop string can complete any more).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(stops: &[&str]) -> StopMatcher {
        StopMatcher::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn holds_a_possible_start_and_releases_it_when_it_diverges() {
        let mut m = matcher(&["\n\nUser:"]);
        assert_eq!(m.push("Hi\n"), Released { text: "Hi".into(), stopped: false });
        assert_eq!(m.push("\nUs"), Released { text: "".into(), stopped: false });
        assert_eq!(m.push("ed"), Released { text: "\n\nUsed".into(), stopped: false });
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn a_match_across_pushes_releases_only_the_text_before_it() {
        let mut m = matcher(&["END", "ZZ"]);
        assert_eq!(m.push("abcE").text, "abc");
        assert_eq!(m.push("N"), Released { text: "".into(), stopped: false });
        assert_eq!(m.push("Dxyz"), Released { text: "".into(), stopped: true });
        // The earliest of several matches wins.
        let mut m = matcher(&["END", "ZZ"]);
        assert_eq!(m.push("aZZbEND"), Released { text: "a".into(), stopped: true });
    }

    #[test]
    fn finish_releases_held_text_and_empty_stops_are_ignored() {
        let mut m = matcher(&["", "ab"]);
        assert_eq!(m.push("xa").text, "x");
        assert_eq!(m.finish(), "a");
        let mut none = matcher(&[]);
        assert_eq!(none.push("plain").text, "plain");
    }
}
