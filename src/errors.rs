//! One line for an error and its causes: the formatting every room uses for logs, stored page
//! errors and the command line's last word.

use std::error::Error as StdError;

/// `outer: inner: innermost`, each cause once: a cause whose text the message already contains
/// (a variant that prints its source as well as keeping it) is not repeated.
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn every_cause_once_in_order() {
        let e = Outer(Middle(std::io::Error::other("disk full")));
        assert_eq!(chain(&e), "outer: middle: disk full");
        assert_eq!(chain(&std::io::Error::other("alone")), "alone");
    }
}
