//! Unknown keys, all of them at once: the strict structs (`deny_unknown_fields`) stop at the first
//! key they do not know, so the document is parsed once and deserialized again after taking out each
//! key the parser refused, until the rest parses (or fails for another reason). Each unknown key
//! keeps its key path (`sites[0].threshhold`), its place in the file and the closest key its table
//! knows (edit distance), so the message can say "did you mean".
//!
//! The known keys of a table are the ones serde's refusal lists, so this follows the structs in
//! `raw` without a list of its own.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

/// One key the schema does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownKey {
    /// Its key path, as validation messages write it (`sites[0].threshhold`).
    pub path: String,
    /// The byte span of the key in the text.
    pub span: Range<usize>,
    /// The keys its table knows, as the parser listed them.
    pub known: Vec<String>,
}

impl UnknownKey {
    /// The closest known key, when one is close enough to be a likely misspelling.
    pub fn suggestion(&self) -> Option<&str> {
        let name = self.path.rsplit('.').next().unwrap_or(&self.path);
        closest(name, &self.known)
    }

    /// What to tell the user: the suggestion, else the keys the table knows.
    pub fn message(&self) -> String {
        match self.suggestion() {
            Some(s) => format!("unknown key, did you mean {s:?}?"),
            None if self.known.is_empty() => "unknown key (this table takes no keys)".to_string(),
            None => format!("unknown key (known here: {})", self.known.join(", ")),
        }
    }
}

/// Another problem found on the way (a value of the wrong type, a required key missing), with the
/// key it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherProblem {
    pub path: String,
    pub message: String,
    /// Where the parser put it.
    pub offset: usize,
}

/// What parsing with every unknown key (and every entry with another problem) taken out gave.
pub struct Collected<T> {
    /// The value of what was left: only meaningful when nothing was taken out.
    pub value: Result<T, toml::de::Error>,
    /// Every unknown key, in file order.
    pub unknown: Vec<UnknownKey>,
    /// Every other problem, in the order found.
    pub others: Vec<OtherProblem>,
}

/// Parse `text` into `T`, collecting every unknown key and every entry the parser refuses for
/// another reason (each taken out so the parse can go on). Fails only when the text is not TOML;
/// `value` is an error only for a problem that names no place in the file.
pub fn parse_collecting<T: DeserializeOwned>(text: &str) -> Result<Collected<T>, toml::de::Error> {
    let mut document = DeTable::parse(text)?;
    let mut unknown: Vec<UnknownKey> = Vec::new();
    let mut others = Vec::new();
    let value = loop {
        let mut err = match T::deserialize(toml::de::Deserializer::from(document.clone())) {
            Ok(v) => break Ok(v),
            Err(e) => e,
        };
        let Some(span) = err.span() else {
            err.set_input(Some(text));
            break Err(err);
        };
        if let Some(known) = unknown_field(err.message()) {
            if let Some(path) = remove_key(document.get_mut(), &span, "") {
                unknown.push(UnknownKey { path, span, known });
                continue;
            }
        } else if let Some(path) = remove_entry_at(document.get_mut(), span.start, "") {
            // A required key left out because it was misspelt is said once, by the unknown key.
            let explained = missing_field(err.message()).is_some_and(|m| {
                misspelt(&unknown, &if path.is_empty() { m.to_string() } else { format!("{path}.{m}") })
            });
            if !explained {
                others.push(OtherProblem { path, message: err.message().to_string(), offset: span.start });
            }
            continue;
        }
        // Rendered like the parser's own errors (line, column and the line itself).
        err.set_input(Some(text));
        break Err(err);
    };
    unknown.sort_by_key(|k| k.span.start);
    Ok(Collected { value, unknown, others })
}

/// Whether the key `path` is absent because it was misspelt: an unknown key of the same table
/// suggests it. A problem of such a key (missing, say) is said once, by the unknown key.
pub fn misspelt(unknown: &[UnknownKey], path: &str) -> bool {
    let (table, name) = match path.rsplit_once('.') {
        Some((t, n)) => (Some(t), n),
        None => (None, path),
    };
    unknown.iter().any(|u| u.path.rsplit_once('.').map(|(t, _)| t) == table && u.suggestion() == Some(name))
}

/// The name in serde's "missing field `x`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// The key names of serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a` or
/// `b`", "there are no fields"): the known ones, when the message is such a refusal.
fn unknown_field(message: &str) -> Option<Vec<String>> {
    let rest = message.strip_prefix("unknown field `")?;
    let (_name, expected) = rest.split_once('`')?;
    // Names are the backquoted parts: every other piece when split at backquotes.
    Some(expected.split('`').skip(1).step_by(2).map(str::to_string).collect())
}

/// Take out the entry whose key has exactly `span` (at any depth, tables in arrays included) and
/// return its key path.
fn remove_key(table: &mut DeTable<'_>, span: &Range<usize>, path: &str) -> Option<String> {
    let join = |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
    let hit = table.keys().find(|k| k.span() == *span).map(|k| k.get_ref().to_string());
    if let Some(name) = hit {
        table.remove(name.as_str());
        return Some(join(&name));
    }
    for (k, v) in table.iter_mut() {
        let name = join(k.get_ref());
        match v.get_mut() {
            DeValue::Table(t) => {
                if let Some(p) = remove_key(t, span, &name) {
                    return Some(p);
                }
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let DeValue::Table(t) = item.get_mut() {
                        if let Some(p) = remove_key(t, span, &format!("{name}[{i}]")) {
                            return Some(p);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Take out the deepest entry whose key or value covers `offset` (the entry a parse error at that
/// place concerns) and return its key path.
fn remove_entry_at(table: &mut DeTable<'_>, offset: usize, path: &str) -> Option<String> {
    let join = |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
    let mut found: Option<(String, Option<String>)> = None;
    for (k, v) in table.iter_mut() {
        let name = join(k.get_ref());
        let deeper = match v.get_mut() {
            DeValue::Table(t) => remove_entry_at(t, offset, &name),
            DeValue::Array(items) => {
                items.iter_mut().enumerate().find_map(|(i, item)| match item.get_mut() {
                    DeValue::Table(t) => remove_entry_at(t, offset, &format!("{name}[{i}]")),
                    _ => None,
                })
            }
            _ => None,
        };
        if let Some(p) = deeper {
            return Some(p);
        }
        if k.span().contains(&offset) || v.span().contains(&offset) {
            found = Some((name, Some(k.get_ref().to_string())));
            break;
        }
    }
    let (name, key) = found?;
    table.remove(key?.as_str());
    Some(name)
}

/// The known key closest to `name`: within a small edit distance (a typo, a swapped pair, a
/// missing or extra letter), else one that contains the name or is contained in it.
pub fn closest<'k>(name: &str, known: &'k [String]) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    let limit = (lower.chars().count() / 3).clamp(1, 3);
    let by_distance = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str());
    by_distance.or_else(|| {
        (lower.len() >= 4)
            .then(|| known.iter().find(|k| k.contains(lower.as_str()) || lower.contains(k.as_str())))
            .flatten()
            .map(String::as_str)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn serde_refusals_give_the_known_keys() {
        assert_eq!(
            unknown_field("unknown field `threshhold`, expected one of `name`, `start`, `threshold`"),
            Some(known(&["name", "start", "threshold"]))
        );
        assert_eq!(unknown_field("unknown field `x`, expected `a` or `b`"), Some(known(&["a", "b"])));
        assert_eq!(unknown_field("unknown field `x`, expected `a`"), Some(known(&["a"])));
        assert_eq!(unknown_field("unknown field `x`, there are no fields"), Some(Vec::new()));
        assert_eq!(unknown_field("invalid type: string \"x\", expected u32"), None);
    }

    #[test]
    fn typos_get_the_closest_key() {
        let site =
            known(&["name", "start", "prefix", "threshold", "max_pages", "page_timeout_ms", "viewport"]);
        assert_eq!(closest("threshhold", &site), Some("threshold"));
        assert_eq!(closest("strat", &site), Some("start"), "a swapped pair is one edit");
        assert_eq!(closest("Name", &site), Some("name"));
        assert_eq!(closest("max_page", &site), Some("max_pages"));
        assert_eq!(closest("viewprot", &site), Some("viewport"));
        assert_eq!(closest("timeout", &site), Some("page_timeout_ms"), "contained in a known key");
        assert_eq!(closest("colour", &site), None);
        assert_eq!(closest("x", &site), None);
    }

    #[test]
    fn entries_at_a_place_are_taken_out() {
        let text = "[server]\nlisten = \"x\"\n[[sites]]\nname = \"a\"\n[[sites]]\nname = \"b\"\nviewport = { width = \"w\" }\n";
        let mut doc = DeTable::parse(text).unwrap();
        let mut take = |needle: &str| remove_entry_at(doc.get_mut(), text.find(needle).unwrap(), "");
        assert_eq!(take("\"x\"").as_deref(), Some("server.listen"));
        assert_eq!(take("\"b\"").as_deref(), Some("sites[1].name"));
        assert_eq!(take("\"w\"").as_deref(), Some("sites[1].viewport.width"));
        assert_eq!(take("{ width").as_deref(), Some("sites[1].viewport"));
        assert_eq!(
            doc.get_ref()["sites"].get_ref().as_array().unwrap()[1].get_ref().as_table().unwrap().len(),
            0
        );
    }
}
