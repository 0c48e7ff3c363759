//! Key location: the line of a key path like `sites[1].start` in the config text, from the spans
//! the TOML parser records (`toml::de::DeTable`), for validation messages.
//!
//! A key that is present gives its own line (inline tables and dotted keys included); a key left
//! out gives the line of the deepest table that is there (`[[sites]]` header of `sites[1]`); a
//! key whose top-level table (or array entry) is missing gives no line.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The parsed text, ready to answer many key paths.
pub struct KeyLocator<'t> {
    text: &'t str,
    /// None when the text is not TOML (then no key has a line).
    root: Option<DeTable<'t>>,
}

impl<'t> KeyLocator<'t> {
    pub fn new(text: &'t str) -> KeyLocator<'t> {
        let root = DeTable::parse(text).ok().map(Spanned::into_inner);
        KeyLocator { text, root }
    }

    /// The 1-based line of `key` (`server.listen`, `sites[1].start`, `sites[0].basic_auth.user`),
    /// else of the deepest table on its path that the file has.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        let span = self.span_of(key)?;
        Some(self.text[..span.start].matches('\n').count() + 1)
    }

    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        let mut table = self.root.as_ref()?;
        let mut found = None;
        let mut segments = key.split('.').peekable();
        while let Some(segment) = segments.next() {
            let (name, index) = split_index(segment);
            let Some((k, mut value)) = table.get_key_value(name) else { break };
            found = Some(if segments.peek().is_none() && index.is_none() {
                // The key itself: its line, not its value's (a value can start lines later).
                k.span()
            } else {
                // A table on the way: its header, or the key of an inline or dotted table.
                value.span()
            });
            if let Some(i) = index {
                // No such entry: no line rather than another entry's.
                let item = value.get_ref().as_array().and_then(|a| a.get(i))?;
                found = Some(item.span());
                value = item;
            }
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                _ => break,
            }
        }
        found
    }
}

/// `sites[1]` -> (`sites`, Some(1)); `server` -> (`server`, None).
fn split_index(segment: &str) -> (&str, Option<usize>) {
    match segment.split_once('[') {
        Some((name, rest)) => (name, rest.strip_suffix(']').and_then(|n| n.parse().ok())),
        None => (segment, None),
    }
}

/// The 1-based line of a key path in TOML text (see [`KeyLocator::line_of`]); for many keys of one
/// text, make one [`KeyLocator`] instead.
pub fn locate_key(text: &str, key: &str) -> Option<usize> {
    KeyLocator::new(text).line_of(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# sitediff
[server]
listen = "x"

[[sites]]
name = "a"
basic_auth = { user = "me",
  password_env = "X" }
viewport.width = 3

[[sites]]
name = "b"
# comment
hide_selectors = [
  ".x",
]

[[plugins]]
name = "p"
"#;

    #[test]
    fn present_keys_give_their_own_line() {
        let l = KeyLocator::new(TEXT);
        assert_eq!(l.line_of("server.listen"), Some(3));
        assert_eq!(l.line_of("sites[0].name"), Some(6));
        assert_eq!(l.line_of("sites[1].name"), Some(12));
        assert_eq!(l.line_of("sites[1].hide_selectors"), Some(14));
        assert_eq!(l.line_of("plugins[0].name"), Some(19));
        // Inside inline tables and dotted keys.
        assert_eq!(l.line_of("sites[0].basic_auth"), Some(7));
        assert_eq!(l.line_of("sites[0].basic_auth.password_env"), Some(8));
        assert_eq!(l.line_of("sites[0].viewport.width"), Some(9));
    }

    #[test]
    fn missing_keys_give_their_table_or_nothing() {
        let l = KeyLocator::new(TEXT);
        assert_eq!(l.line_of("server.token_env"), Some(2), "the [server] header");
        assert_eq!(l.line_of("sites[1].start"), Some(11), "the second [[sites]] header");
        assert_eq!(l.line_of("sites[0].basic_auth.user_x"), Some(7), "the inline table");
        assert_eq!(l.line_of("sites[5].start"), None, "no such entry");
        assert_eq!(l.line_of("store.path"), None, "no [store] table");
        assert_eq!(l.line_of("sites"), Some(5));
        assert_eq!(locate_key("", "server.listen"), None);
        assert_eq!(locate_key("not = = toml", "not"), None);
    }

    #[test]
    fn index_parsing() {
        assert_eq!(split_index("sites[12]"), ("sites", Some(12)));
        assert_eq!(split_index("server"), ("server", None));
        assert_eq!(split_index("sites[x]"), ("sites", None));
    }
}
