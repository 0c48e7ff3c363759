//! The plugin host: one shared wasmtime engine (fuel + epoch interruption, with a ticker thread for
//! the wall clock), modules compiled and checked once at load, a fresh store per call with a memory
//! cap, and the copying of images, contexts and outputs across the sandbox boundary.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::{
    Caller, Config, Engine, Extern, ExternType, Instance, InstancePre, Linker, Memory, Module,
    ResourceLimiter, Store, Trap, TypedFunc, WasmBacktrace,
};

use super::abi::{self, EntryResult};
use super::check::{check_module, WASM_PAGE};
use super::error::{PluginError, PluginLogs, WasmError, OUTCOME_OK};
use super::model::{CallStats, MaskOutput, PageContext, PluginKind, ScoreOutput, Size};
use crate::capture::SelectorRects;
use crate::config::{PluginConfig, PluginLimits, PluginSource};
use crate::diff::{DiffOutcome, Rect, RgbaImage};

/// How often the ticker thread advances the engine's epoch; the wall-clock limit of a call is
/// enforced with this granularity.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Tables a plugin may grow to (elements).
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Instances, memories and tables per store: one module, one memory.
const MAX_INSTANCES: usize = 1;
const MAX_MEMORIES: usize = 1;
const MAX_TABLES: usize = 4;
/// Largest 32-bit linear memory.
const MAX_WASM32_MEMORY: usize = 1 << 32;

/// Why the shared engine could not be set up: the step that failed and its cause (kept, and
/// reported for every plugin of every later load).
type EngineFailure = (&'static str, Arc<dyn StdError + Send + Sync + 'static>);

/// The process-wide engine, created on first use, with its epoch ticker.
fn shared_engine() -> Result<&'static Engine, EngineFailure> {
    static ENGINE: OnceLock<Result<Engine, EngineFailure>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.consume_fuel(true).epoch_interruption(true);
            let engine =
                Engine::new(&config).map_err(|e| ("creating the engine", Arc::from(WasmError::from(e))))?;
            let ticker = engine.clone();
            std::thread::Builder::new()
                .name("sitediff-wasm-epoch".into())
                .spawn(move || loop {
                    std::thread::sleep(EPOCH_TICK);
                    ticker.increment_epoch();
                })
                .map_err(|e| ("starting the epoch ticker thread", Arc::new(e) as Arc<_>))?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The error of `plugin` when the engine step `step` failed with `source`.
fn engine_error(plugin: &str, step: &'static str, source: Arc<dyn StdError + Send + Sync>) -> PluginError {
    PluginError::Engine { plugin: plugin.to_string(), step, source }
}

/// Per-call memory and table limits; records what tripped the memory cap.
struct Limiter {
    memory_cap: usize,
    denied: Option<usize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.denied = Some(desired);
            // Trap rather than return -1: the plugin fails with a clear MemoryLimit error.
            wasmtime::bail!("memory limit: wanted {desired} bytes, limit {} bytes", self.memory_cap);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }
    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// `sitediff_mask(image, width, height, context, context_len, rects, rect_count) -> i64`.
type MaskFn = TypedFunc<(i32, i32, i32, i32, i32, i32, i32), i64>;
/// `sitediff_score(base, base_w, base_h, new, new_w, new_h, context, context_len) -> i64`.
type ScoreFn = TypedFunc<(i32, i32, i32, i32, i32, i32, i32, i32), i64>;

/// The data of one call's store.
struct CallState {
    limiter: Limiter,
    logs: Vec<String>,
    dropped_logs: usize,
}

/// `env.log(ptr, len)`: keep a bounded, sanitised line and pass it to tracing.
fn host_log(mut caller: Caller<'_, CallState>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let Some(Extern::Memory(memory)) = caller.get_export(abi::EXPORT_MEMORY) else {
        wasmtime::bail!("env.log called, but the module exports no memory");
    };
    let range = abi::checked_range(ptr as u32, len as u32, memory.data_size(&caller))
        .map_err(|e| wasmtime::format_err!("env.log: {e}"))?;
    let state = caller.data();
    if state.logs.len() >= abi::MAX_LOG_LINES {
        caller.data_mut().dropped_logs += 1;
        return Ok(());
    }
    // Kept, not traced here: the caller shows the lines once (crawl log, `plugin run`, an error).
    let line = abi::sanitize_log_line(&memory.data(&caller)[range]);
    caller.data_mut().logs.push(line);
    Ok(())
}

/// Why a call step failed: inside wasm (mapped with the store's state) or a host-side check.
enum Fail {
    Wasm(wasmtime::Error),
    Plugin(PluginError),
}

impl From<wasmtime::Error> for Fail {
    fn from(e: wasmtime::Error) -> Fail {
        Fail::Wasm(e)
    }
}

impl From<PluginError> for Fail {
    fn from(e: PluginError) -> Fail {
        Fail::Plugin(e)
    }
}

/// What `sitediff plugin check` prints about a loaded plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub path: PathBuf,
    pub kind: PluginKind,
    pub abi_version: i32,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// The module's initial linear memory.
    pub initial_memory_bytes: u64,
    pub module_bytes: usize,
    pub fuel: u64,
    pub memory_limit_bytes: usize,
    pub timeout_ms: u128,
    /// Fuel the ABI-version probe used (instantiation, start function, version call).
    pub probe_fuel: u64,
}

struct Loaded {
    name: String,
    limits: PluginLimits,
    kind: PluginKind,
    pre: InstancePre<CallState>,
    info: PluginInfo,
}

/// Compiled, checked plugins, ready to be called from any thread.
pub struct PluginHost {
    engine: &'static Engine,
    plugins: Vec<Loaded>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").field("plugins", &self.by_name.keys().collect::<Vec<_>>()).finish()
    }
}

/// The JSON context of a mask call.
#[derive(Serialize)]
struct MaskJson<'a> {
    abi_version: i32,
    kind: PluginKind,
    site: &'a str,
    page_key: &'a str,
    url: &'a str,
    viewport: Size,
    image: Size,
    selectors: &'a [SelectorRects],
}

/// The diff as a score plugin sees it.
#[derive(Serialize)]
struct DiffJson<'a> {
    diff_pixels: u64,
    total_pixels: u64,
    distortion: f64,
    size_changed: bool,
    regions: &'a [Rect],
    /// What the diff did not compare (added in ABI v1's context: older plugins ignore it).
    ignored: &'a [Rect],
}

/// The JSON context of a score call.
#[derive(Serialize)]
struct ScoreJson<'a> {
    abi_version: i32,
    kind: PluginKind,
    site: &'a str,
    page_key: &'a str,
    url: &'a str,
    viewport: Size,
    base: Size,
    new: Size,
    diff: DiffJson<'a>,
    selectors: &'a [SelectorRects],
}

/// The JSON context a mask call on an `image`-sized capture receives (`plugin run --print-context`).
pub fn mask_context_json(ctx: &PageContext, image: Size) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&MaskJson {
        abi_version: abi::ABI_VERSION,
        kind: PluginKind::Mask,
        site: &ctx.site,
        page_key: &ctx.page_key,
        url: &ctx.url,
        viewport: ctx.viewport,
        image,
        selectors: &ctx.selectors,
    })
}

/// The JSON context a score call receives (`plugin run --print-context`).
pub fn score_context_json(
    ctx: &PageContext,
    base: Size,
    new: Size,
    diff: &DiffOutcome,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&ScoreJson {
        abi_version: abi::ABI_VERSION,
        kind: PluginKind::Score,
        site: &ctx.site,
        page_key: &ctx.page_key,
        url: &ctx.url,
        viewport: ctx.viewport,
        base,
        new,
        diff: DiffJson {
            diff_pixels: diff.diff_pixels,
            total_pixels: diff.total_pixels,
            distortion: diff.distortion,
            size_changed: diff.size_changed,
            regions: &diff.regions,
            ignored: &ctx.ignored,
        },
        selectors: &ctx.selectors,
    })
}

/// Maps a reason `plugin`'s output was refused to the error naming it.
fn bad_output(plugin: &str) -> impl Fn(String) -> PluginError + '_ {
    move |reason| PluginError::BadOutput { plugin: plugin.to_string(), reason, logs: PluginLogs::default() }
}

fn image_bytes(plugin: &str, img: &RgbaImage, what: &str) -> Result<usize, PluginError> {
    let want = img.width as usize * img.height as usize * 4;
    if img.data.len() != want {
        return Err(PluginError::Input {
            plugin: plugin.to_string(),
            reason: format!(
                "{what} image claims {}x{} but holds {} bytes, not {want}",
                img.width,
                img.height,
                img.data.len()
            ),
        });
    }
    Ok(want)
}

impl PluginHost {
    /// Compile and check every configured plugin: imports, exports, kind and ABI version (the
    /// module is instantiated once under its limits and asked for its version). Returns every
    /// problem of every plugin, each naming its plugin.
    pub fn load(configs: &[PluginConfig]) -> Result<PluginHost, Vec<PluginError>> {
        let every_plugin = |(step, source): EngineFailure| -> Vec<PluginError> {
            configs.iter().map(|c| engine_error(&c.name, step, source.clone())).collect()
        };
        let engine = shared_engine().map_err(every_plugin)?;
        let mut linker: Linker<CallState> = Linker::new(engine);
        linker
            .func_wrap(abi::IMPORT_MODULE, abi::IMPORT_LOG, host_log)
            .map_err(|e| every_plugin(("linking env.log", Arc::from(WasmError::from(e)))))?;
        let mut host = PluginHost { engine, plugins: Vec::new(), by_name: HashMap::new() };
        let mut errors = Vec::new();
        for config in configs {
            match host.load_one(&linker, config) {
                Ok(loaded) => {
                    host.by_name.insert(loaded.name.clone(), host.plugins.len());
                    host.plugins.push(loaded);
                }
                Err(mut errs) => errors.append(&mut errs),
            }
        }
        if errors.is_empty() {
            Ok(host)
        } else {
            Err(errors)
        }
    }

    fn load_one(
        &self,
        linker: &Linker<CallState>,
        config: &PluginConfig,
    ) -> Result<Loaded, Vec<PluginError>> {
        let name = config.name.clone();
        let bytes = match &config.source {
            PluginSource::File(path) => std::fs::read(path).map_err(|source| {
                vec![PluginError::Io { plugin: name.clone(), path: path.clone(), source }]
            })?,
            PluginSource::Builtin { wat, .. } => wat.as_bytes().to_vec(),
        };
        let module = Module::new(self.engine, &bytes).map_err(|e| {
            vec![PluginError::Compile { plugin: name.clone(), path: config.source.path(), source: e.into() }]
        })?;
        let kind = check_module(&name, &module)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| vec![PluginError::Instantiate { plugin: name.clone(), source: e.into() }])?;
        let initial_memory_bytes = module
            .exports()
            .find_map(|e| match e.ty() {
                ExternType::Memory(m) if e.name() == abi::EXPORT_MEMORY => Some(m.minimum() * m.page_size()),
                _ => None,
            })
            .unwrap_or(0);
        let info = PluginInfo {
            name: name.clone(),
            path: config.source.path(),
            kind,
            abi_version: 0,
            imports: module.imports().map(|i| format!("{}.{}", i.module(), i.name())).collect(),
            exports: module.exports().map(|e| e.name().to_string()).collect(),
            initial_memory_bytes,
            module_bytes: bytes.len(),
            fuel: config.limits.fuel,
            memory_limit_bytes: config.limits.memory_bytes,
            timeout_ms: config.limits.timeout.as_millis(),
            probe_fuel: 0,
        };
        let mut loaded = Loaded { name: name.clone(), limits: config.limits, kind, pre, info };
        let (version, stats, _logs) = self
            .call(&loaded, 0, |store, instance, _memory| {
                let f: TypedFunc<(), i32> = instance.get_typed_func(&mut *store, abi::EXPORT_ABI_VERSION)?;
                Ok(f.call(&mut *store, ())?)
            })
            .map_err(|e| vec![e])?;
        if version != abi::ABI_VERSION {
            return Err(vec![PluginError::AbiVersion {
                plugin: name,
                found: version,
                supported: abi::ABI_VERSION,
            }]);
        }
        loaded.info.abi_version = version;
        loaded.info.probe_fuel = stats.fuel_used;
        Ok(loaded)
    }

    /// Load a single plugin file with the given (or default) limits, for `sitediff plugin`.
    pub fn load_file(
        name: &str,
        path: PathBuf,
        limits: PluginLimits,
    ) -> Result<PluginHost, Vec<PluginError>> {
        PluginHost::load_source(name, PluginSource::File(path), limits)
    }

    /// Load a single plugin (a file or a bundled one) with the given limits.
    pub fn load_source(
        name: &str,
        source: PluginSource,
        limits: PluginLimits,
    ) -> Result<PluginHost, Vec<PluginError>> {
        PluginHost::load(&[PluginConfig { name: name.to_string(), source, limits }])
    }

    /// The loaded plugins' names, in configuration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plugins.iter().map(|p| p.name.as_str())
    }

    /// Mask or score, from the plugin's exports; `None` if no such plugin is loaded.
    pub fn kind(&self, plugin: &str) -> Option<PluginKind> {
        self.get(plugin).ok().map(|p| p.kind)
    }

    /// What was found when the plugin was loaded.
    pub fn info(&self, plugin: &str) -> Option<&PluginInfo> {
        self.get(plugin).ok().map(|p| &p.info)
    }

    fn get(&self, plugin: &str) -> Result<&Loaded, PluginError> {
        self.by_name
            .get(plugin)
            .map(|&i| &self.plugins[i])
            .ok_or_else(|| PluginError::Unknown { plugin: plugin.to_string() })
    }

    fn get_kind(&self, plugin: &str, wanted: PluginKind) -> Result<&Loaded, PluginError> {
        let p = self.get(plugin)?;
        if p.kind != wanted {
            return Err(PluginError::WrongKind { plugin: plugin.to_string(), wanted, actual: p.kind });
        }
        Ok(p)
    }

    /// Run a mask plugin on one capture. Blocking: call it off the async threads.
    pub fn mask(&self, plugin: &str, img: &RgbaImage, ctx: &PageContext) -> Result<MaskOutput, PluginError> {
        let p = self.get_kind(plugin, PluginKind::Mask)?;
        let image_len = image_bytes(plugin, img, "the")?;
        let json = mask_context_json(ctx, Size { width: img.width, height: img.height })
            .map_err(|source| PluginError::Context { plugin: plugin.to_string(), source })?;
        let (rects, rect_count) = abi::encode_selector_rects(&ctx.selectors, img.width, img.height);
        let inputs = image_len + json.len() + rects.len();
        let ((reply, edited), stats, logs) = self.call(p, inputs, |store, instance, memory| {
            let alloc: TypedFunc<i32, i32> = instance.get_typed_func(&mut *store, abi::EXPORT_ALLOC)?;
            let img_ptr = put(store, plugin, &alloc, memory, &img.data, "image")?;
            let ctx_ptr = put(store, plugin, &alloc, memory, &json, "context")?;
            let rects_ptr = put(store, plugin, &alloc, memory, &rects, "selector rectangles")?;
            let f: MaskFn = instance.get_typed_func(&mut *store, abi::EXPORT_MASK)?;
            let result = f.call(
                &mut *store,
                (
                    img_ptr as i32,
                    img.width as i32,
                    img.height as i32,
                    ctx_ptr as i32,
                    json.len() as i32,
                    rects_ptr as i32,
                    rect_count as i32,
                ),
            )?;
            let reply = decode_output(store, plugin, memory, result, |out| {
                abi::parse_mask_output(out, img.width, img.height)
            })?;
            let edited = if reply.image_edited {
                let range = abi::checked_range(img_ptr, image_len as u32, memory.data_size(&*store))
                    .map_err(bad_output(plugin))?;
                Some(RgbaImage {
                    width: img.width,
                    height: img.height,
                    data: memory.data(&*store)[range].to_vec(),
                })
            } else {
                None
            };
            Ok((reply, edited))
        })?;
        Ok(MaskOutput { ignore: reply.ignore, image: edited, logs, stats })
    }

    /// Run a score plugin on a compared pair. Blocking: call it off the async threads.
    pub fn score(
        &self,
        plugin: &str,
        base: &RgbaImage,
        new: &RgbaImage,
        diff: &DiffOutcome,
        ctx: &PageContext,
    ) -> Result<ScoreOutput, PluginError> {
        let p = self.get_kind(plugin, PluginKind::Score)?;
        let base_len = image_bytes(plugin, base, "the baseline")?;
        let new_len = image_bytes(plugin, new, "the new")?;
        let json = score_context_json(
            ctx,
            Size { width: base.width, height: base.height },
            Size { width: new.width, height: new.height },
            diff,
        )
        .map_err(|source| PluginError::Context { plugin: plugin.to_string(), source })?;
        let inputs = base_len + new_len + json.len();
        let ((score, reason), stats, logs) = self.call(p, inputs, |store, instance, memory| {
            let alloc: TypedFunc<i32, i32> = instance.get_typed_func(&mut *store, abi::EXPORT_ALLOC)?;
            let base_ptr = put(store, plugin, &alloc, memory, &base.data, "baseline image")?;
            let new_ptr = put(store, plugin, &alloc, memory, &new.data, "new image")?;
            let ctx_ptr = put(store, plugin, &alloc, memory, &json, "context")?;
            let f: ScoreFn = instance.get_typed_func(&mut *store, abi::EXPORT_SCORE)?;
            let result = f.call(
                &mut *store,
                (
                    base_ptr as i32,
                    base.width as i32,
                    base.height as i32,
                    new_ptr as i32,
                    new.width as i32,
                    new.height as i32,
                    ctx_ptr as i32,
                    json.len() as i32,
                ),
            )?;
            decode_output(store, plugin, memory, result, abi::parse_score_output)
        })?;
        Ok(ScoreOutput { score, reason, logs, stats })
    }

    /// Run the mask plugins among `plugins` in order on one capture (score plugins are skipped):
    /// each sees the pixels the previous ones edited; their ignore rectangles are collected.
    /// The first failure stops the chain.
    pub fn apply_masks(
        &self,
        plugins: &[String],
        img: &RgbaImage,
        ctx: &PageContext,
    ) -> Result<MaskOutput, PluginError> {
        let mut total = MaskOutput::default();
        for name in plugins {
            if self.kind(name) != Some(PluginKind::Mask) {
                self.get(name)?;
                continue;
            }
            let current = total.image.as_ref().unwrap_or(img);
            let out = self.mask(name, current, ctx)?;
            total.ignore.extend(out.ignore);
            total.logs.extend(out.logs.into_iter().map(|l| format!("{name}: {l}")));
            total.stats.fuel_used += out.stats.fuel_used;
            total.stats.elapsed += out.stats.elapsed;
            if out.image.is_some() {
                total.image = out.image;
            }
        }
        Ok(total)
    }

    /// One call in a fresh store: limits set, instance made, `body` run, failures named.
    /// `input_bytes` (what the host copies in) is added to the memory cap, so the configured cap
    /// bounds the plugin's own working memory whatever the page size.
    fn call<R>(
        &self,
        p: &Loaded,
        input_bytes: usize,
        body: impl FnOnce(&mut Store<CallState>, &Instance, &Memory) -> Result<R, Fail>,
    ) -> Result<(R, CallStats, Vec<String>), PluginError> {
        let started = Instant::now();
        let input_pages = input_bytes.div_ceil(WASM_PAGE) * WASM_PAGE;
        let memory_cap = p.limits.memory_bytes.saturating_add(input_pages).min(MAX_WASM32_MEMORY);
        let state =
            CallState { limiter: Limiter { memory_cap, denied: None }, logs: Vec::new(), dropped_logs: 0 };
        let mut store = Store::new(self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(p.limits.fuel)
            .map_err(|e| engine_error(&p.name, "setting the fuel", Arc::from(WasmError::from(e))))?;
        let ticks = p.limits.timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1;
        store.set_epoch_deadline(ticks);

        let result = (|| -> Result<R, Fail> {
            let instance = p.pre.instantiate(&mut store)?;
            let memory = instance
                .get_memory(&mut store, abi::EXPORT_MEMORY)
                .ok_or_else(|| PluginError::NoMemory { plugin: p.name.clone() })?;
            body(&mut store, &instance, &memory)
        })();

        let fuel_used = p.limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let stats = CallStats { fuel_used, elapsed: started.elapsed() };
        let value = match result {
            Ok(v) => Ok(v),
            Err(Fail::Plugin(e)) => Err(e),
            Err(Fail::Wasm(e)) => Err(self.classify(p, store.data(), memory_cap, e)),
        };
        let state = store.into_data();
        let mut logs = state.logs;
        if state.dropped_logs > 0 {
            logs.push(format!("({} more log line(s) dropped)", state.dropped_logs));
        }
        let value = value.map_err(|e| e.with_logs(logs.clone()))?;
        tracing::debug!(plugin = %p.name, fuel = fuel_used, elapsed_ms = stats.elapsed.as_millis() as u64,
            outcome = OUTCOME_OK, "plugin call");
        Ok((value, stats, logs))
    }

    /// Name a failure from inside wasm: memory cap, fuel, deadline, or another trap.
    fn classify(&self, p: &Loaded, state: &CallState, memory_cap: usize, e: wasmtime::Error) -> PluginError {
        let plugin = p.name.clone();
        if let Some(requested) = state.limiter.denied {
            return PluginError::MemoryLimit {
                plugin,
                requested,
                limit: memory_cap,
                logs: PluginLogs::default(),
            };
        }
        let logs = PluginLogs::default();
        let at = trap_location(&e);
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => PluginError::OutOfFuel { plugin, fuel: p.limits.fuel, logs },
            Some(Trap::Interrupt) => PluginError::Timeout { plugin, timeout: p.limits.timeout, logs },
            Some(trap) => PluginError::Trap { plugin, reason: format!("{trap}{at}"), logs, source: e.into() },
            None => {
                // The chain without wasmtime's multi-line backtrace (named by `at` instead).
                let reason = e
                    .chain()
                    .map(|c| c.to_string())
                    .filter(|c| !c.contains("wasm backtrace:"))
                    .collect::<Vec<_>>()
                    .join(": ");
                PluginError::Trap { plugin, reason: format!("{reason}{at}"), logs, source: e.into() }
            }
        }
    }
}

/// Where in the module a call trapped: ` in function NAME (function index N) at module offset 0x..`,
/// the innermost wasm frame, named from the module's name section when it has one (empty when
/// wasmtime captured no backtrace).
fn trap_location(e: &wasmtime::Error) -> String {
    let Some(frame) = e.downcast_ref::<WasmBacktrace>().and_then(|bt| bt.frames().first()) else {
        return String::new();
    };
    let name = match frame.func_name() {
        Some(n) => format!("`{n}`"),
        None => format!("#{} (no name section: build without stripping names)", frame.func_index()),
    };
    let mut at = format!(" in wasm function {name}");
    if let Some(offset) = frame.module_offset() {
        at.push_str(&format!(" at module offset {offset:#x}"));
    }
    if let Some(offset) = frame.func_offset() {
        at.push_str(&format!(" (function offset {offset:#x})"));
    }
    at
}

/// Copy `bytes` into a buffer the plugin allocates; returns its address (0 for no bytes).
fn put(
    store: &mut Store<CallState>,
    plugin: &str,
    alloc: &TypedFunc<i32, i32>,
    memory: &Memory,
    bytes: &[u8],
    what: &str,
) -> Result<u32, Fail> {
    if bytes.is_empty() {
        return Ok(0);
    }
    let len = u32::try_from(bytes.len()).ok().filter(|&l| l <= i32::MAX as u32).ok_or_else(|| {
        PluginError::Input {
            plugin: plugin.to_string(),
            reason: format!("the {what} is {} bytes, too large for a 32-bit plugin", bytes.len()),
        }
    })?;
    let ptr = alloc.call(&mut *store, len as i32)? as u32;
    if ptr == 0 {
        return Err(PluginError::BadOutput {
            plugin: plugin.to_string(),
            reason: format!("{}({len}) for the {what} returned 0", abi::EXPORT_ALLOC),
            logs: PluginLogs::default(),
        }
        .into());
    }
    let range =
        abi::checked_range(ptr, len, memory.data_size(&*store)).map_err(|e| PluginError::BadOutput {
            plugin: plugin.to_string(),
            reason: format!("{}({len}) for the {what}: {e}", abi::EXPORT_ALLOC),
            logs: PluginLogs::default(),
        })?;
    memory.data_mut(&mut *store)[range].copy_from_slice(bytes);
    Ok(ptr)
}

/// Decode the output buffer an entry point's result points to with `parse` (an empty buffer is
/// handed over as it is). When the buffer is refused but the result read the other way round
/// (length in the high bits) would decode, the error says so.
fn decode_output<T>(
    store: &Store<CallState>,
    plugin: &str,
    memory: &Memory,
    result: i64,
    parse: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<T, Fail> {
    let (ptr, len) = match abi::split_result(result) {
        EntryResult::Failed(code) => {
            return Err(
                PluginError::Failed { plugin: plugin.to_string(), code, logs: PluginLogs::default() }.into()
            )
        }
        EntryResult::Output { len: 0, .. } => return parse(&[]).map_err(|e| bad_output(plugin)(e).into()),
        EntryResult::Output { ptr, len } => (ptr, len),
    };
    let data = memory.data(store);
    let read = |ptr: u32, len: u32| -> Result<T, String> {
        let range = abi::checked_range(ptr, len, data.len())?;
        parse(&data[range])
    };
    read(ptr, len).map_err(|reason| {
        let swapped = len != 0 && ptr != 0 && read(len, ptr).is_ok();
        let reason = match swapped {
            true => format!(
                "{reason} (read as address {len} and length {ptr} it would be valid: the result must be \
                 (address << 32) | length, the address in the high 32 bits)"
            ),
            false => reason,
        };
        bad_output(plugin)(reason).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn host_is_shareable_across_threads() {
        assert_send_sync::<PluginHost>();
    }
}
