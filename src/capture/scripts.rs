//! What runs inside the page: the page-side scripts (`js/*.js`, compiled in), the arguments they are
//! called with, what they answer, and the style sheet injected before the shot.
//!
//! Each `js/NAME.js` file is plain JavaScript declaring one function. It runs as a WebDriver script
//! body: the file, then `return NAME.apply(window, arguments);`. Values reach it only as script
//! arguments (JSON), never spliced into its text.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::devtools::{script_expression, ScriptKind};

/// How long stabilisation waits for images still loading (lazy ones included).
pub const IMAGE_WAIT: Duration = Duration::from_secs(5);
/// How long stabilisation waits for an animation frame (two while scrolling) before going on anyway.
pub const FRAME_WAIT: Duration = Duration::from_millis(500);
/// Network quiet: no request in flight and no resource finished for this long...
pub const NETWORK_QUIET: Duration = Duration::from_millis(200);
/// ...waited for at most this long.
pub const NETWORK_QUIET_CAP: Duration = Duration::from_secs(3);
/// Poll interval of the network-quiet wait.
pub const NETWORK_POLL: Duration = Duration::from_millis(25);
/// Most viewport-high scroll steps taken to trigger lazy content (down to the default `max_height`
/// of 150,000 px with a 600-px viewport).
pub const MAX_SCROLL_STEPS: u32 = 250;
/// Page timers (`setTimeout`/`setInterval`) at least this long never fire: carousels, delayed
/// banners and the like are photographed as they are at load (DevTools endpoints only).
pub const LONG_TIMER: Duration = Duration::from_millis(1000);

/// The WebDriver script body that calls the function `$name` declared in `js/$file`.
macro_rules! page_function {
    ($file:literal, $name:literal) => {
        concat!(include_str!(concat!("js/", $file)), "\nreturn ", $name, ".apply(window, arguments);\n")
    };
}

/// Document-start script (arguments: the site prefix, [`LONG_TIMER`] in ms): the navigation guard,
/// request counting, timer control and lazy-content hooks. See [`doc_start_js`].
const DOC_START: &str = page_function!("doc_start.js", "sitediffDocStart");
/// Settles the page for its shot and measures it (async; see [`settle`]).
const SETTLE: &str = page_function!("settle.js", "sitediffSettle");
/// The rendered DOM, the document's URL, whether the settle script ran on this document, and the
/// navigations the guard refused.
pub const READ_PAGE: &str = page_function!("read_page.js", "sitediffReadPage");
/// The document's URL (where the browser ended up after navigating).
pub const LOCATION: &str = page_function!("location.js", "sitediffLocation");
/// The viewport's size (`[innerWidth, innerHeight]`), for the W3C window-resize fallback.
pub const INNER_SIZE: &str = page_function!("inner_size.js", "sitediffInnerSize");

/// Styles that make a page render the same way on every run.
const FREEZE_CSS: &str = "\
*, *::before, *::after {\n  animation: none !important;\n  transition: none !important;\n  \
caret-color: transparent !important;\n  scroll-behavior: auto !important;\n}\n\
html { scrollbar-width: none !important; }\n\
::-webkit-scrollbar { display: none !important; width: 0 !important; height: 0 !important; }\n";

/// A WebDriver-style page script: its body, its arguments, how it hands back its result.
#[derive(Debug, Clone)]
pub struct Script<'s> {
    pub body: &'s str,
    pub args: Vec<Value>,
    pub kind: ScriptKind,
}

impl<'s> Script<'s> {
    /// A synchronous script without arguments.
    pub fn sync(body: &'s str) -> Script<'s> {
        Script { body, args: Vec::new(), kind: ScriptKind::Sync }
    }
}

/// The document-start script for a site prefix, as a W3C script (run once the page has loaded).
pub fn doc_start(prefix: &Url) -> Script<'static> {
    Script {
        body: DOC_START,
        args: vec![json!(prefix.as_str()), json!(ms(LONG_TIMER))],
        kind: ScriptKind::Sync,
    }
}

/// The document-start script for a site prefix, as the source installed before every new
/// document's own scripts (DevTools `Page.addScriptToEvaluateOnNewDocument`).
pub fn doc_start_js(prefix: &Url) -> String {
    let script = doc_start(prefix);
    script_expression(script.body, &script.args, script.kind)
}

/// The settle script: `css` injected before the shot, the page measured down to `max_height`, the
/// rectangles of `mask_selectors` measured; `injected` says the site runs a script of its own.
pub fn settle(css: &str, max_height: u32, mask_selectors: &[String], injected: bool) -> Script<'static> {
    // In the order of `sitediffSettle`'s parameters (js/settle.js).
    let args = vec![
        json!(css),
        json!(ms(IMAGE_WAIT)),
        json!(ms(FRAME_WAIT)),
        json!(ms(NETWORK_QUIET)),
        json!(ms(NETWORK_QUIET_CAP)),
        json!(max_height),
        json!(MAX_SCROLL_STEPS),
        json!(ms(NETWORK_POLL)),
        json!(mask_selectors),
        json!(injected),
    ];
    Script { body: SETTLE, args, kind: ScriptKind::Async }
}

/// What the settle script calls back with when the page settled.
#[derive(Debug, Deserialize)]
pub struct Settled {
    /// The document's URL.
    pub url: String,
    pub height: f64,
    /// Per selector: `[x, y, width, height]` in page CSS px.
    pub masks: Vec<Vec<[f64; 4]>>,
    #[serde(default)]
    pub title: String,
}

/// The CSS injected before the shot: freezing rules, the site's CSS, then hiding and removing rules.
pub fn page_css(inject_css: &str, hide_selectors: &[String], remove_selectors: &[String]) -> String {
    let mut css = String::from(FREEZE_CSS);
    css.push_str(inject_css);
    css.push('\n');
    // One rule per selector: an invalid selector only drops its own rule.
    for sel in hide_selectors {
        css.push_str(sel);
        css.push_str(" { visibility: hidden !important; }\n");
    }
    for sel in remove_selectors {
        css.push_str(sel);
        css.push_str(" { display: none !important; }\n");
    }
    css
}

/// `d` in whole milliseconds (saturating).
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_calls_the_function_its_file_declares() {
        for (body, name) in [
            (DOC_START, "sitediffDocStart"),
            (SETTLE, "sitediffSettle"),
            (READ_PAGE, "sitediffReadPage"),
            (LOCATION, "sitediffLocation"),
            (INNER_SIZE, "sitediffInnerSize"),
        ] {
            assert!(body.starts_with("// sitediff "), "{name}: the file starts with its header comment");
            assert_eq!(body.matches(&format!("\nfunction {name}(")).count(), 1, "{name}: declared once");
            assert!(body.ends_with(&format!("}}\n\nreturn {name}.apply(window, arguments);\n")), "{name}");
        }
    }

    #[test]
    fn settle_arguments_match_the_function_parameters() {
        let params =
            SETTLE.split("function sitediffSettle(").nth(1).and_then(|s| s.split(')').next()).unwrap();
        let params: Vec<&str> = params.split(',').map(str::trim).collect();
        let script = settle("css", 100, &[".m".into()], true);
        // The callback `done` comes last, added by the WebDriver endpoint or the DevTools wrapper.
        assert_eq!(params.len(), script.args.len() + 1, "{params:?}");
        assert_eq!(params.last(), Some(&"done"));
        assert_eq!(script.args[0], json!("css"));
        assert_eq!(script.args[5], json!(100));
        assert_eq!(script.args[8], json!([".m"]));
        assert_eq!(script.args[9], json!(true));
    }

    #[test]
    fn doc_start_gets_the_prefix_as_a_json_argument() {
        let prefix = Url::parse("http://127.0.0.1:8000/docs/a'b/").unwrap();
        let js = doc_start_js(&prefix);
        assert!(js.starts_with("(function () {\n// sitediff document-start script"), "{js}");
        assert!(
            js.ends_with(
                ").apply(window, [\"http://127.0.0.1:8000/docs/a'b/\",1000])\n//# sourceURL=sitediff-script"
            ),
            "{js}"
        );
        let w3c = doc_start(&prefix);
        assert_eq!(w3c.args, vec![json!(prefix.as_str()), json!(1000)]);
    }

    #[test]
    fn page_css_has_one_rule_per_hidden_selector() {
        let css = page_css("body{color:red}", &[".a".into(), "#b > c".into()], &[".gone".into()]);
        assert!(css.starts_with(FREEZE_CSS));
        assert!(css.contains("body{color:red}"));
        assert!(css.contains(".a { visibility: hidden !important; }\n"));
        assert!(css.contains("#b > c { visibility: hidden !important; }\n"));
        assert!(css.contains(".gone { display: none !important; }\n"));
    }
}
