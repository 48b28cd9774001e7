//! Deterministic generator of realistic pino-style HTTP log files.
//!
//! Tests, benchmarks, the memory benchmark (a file of a gigabyte or more) and
//! the README's first command all need log files that look like what a
//! Node.js service logging with [pino](https://getpino.io) (through
//! `pino-http` / a NestJS `HttpLogger`) really writes, without shipping large
//! fixtures. This module makes them:
//!
//! * **Deterministic.** A small seeded PRNG (splitmix64) lives in this module,
//!   no `rand` crate: the same [`SampleConfig`] gives byte-identical JSON on
//!   every machine and every run. The gzip bytes are deterministic too for a
//!   given `flate2`/`zlib-rs` version (the gzip header carries no mtime and a
//!   fixed OS byte).
//! * **Realistic variety.** About 700-750 bytes of JSON per record on average:
//!   `level` (mostly 30, some 20/40/50, rarely 10/60, rarely a string such as
//!   `"info"` or an unusual number such as `35`), `time` (epoch ms), `pid`,
//!   `hostname`, `timestamp` (ISO-8601, the same instant as `time`; missing in
//!   ~5% of records), `context`, `message` (or `msg` in ~10% of records), and a
//!   `req` object with `id` (sometimes a number), `method`, `url` with path
//!   parameters and a query string, `query` (0-5 keys; ~35% of records have a
//!   nested value: an object or an array, as `qs` parses
//!   `filter[tag][]=a&filter[tag][]=b`), `params` (0-2 keys), `headers`
//!   (3-8 keys), `remoteAddress` and `remotePort`. Then `res.statusCode`, an
//!   `err` object on errors, and the application fields `authUserId` (missing
//!   in ~30%, a numeric string such as `"1102"` in ~1%, an invalid string such
//!   as `"abc"` in ~0.2%), `processingTimeMs`, `cacheHit`, `documentCount` and
//!   `lastUpdated`, each missing at random. Some messages and user agents hold
//!   non-ASCII text (é, 日本語, emoji) and JSON escapes (`\"`, `\\`, `\n`,
//!   `\u00e9`, surrogate pairs).
//! * **Time-ordered.** Record `i` of a file is stamped
//!   `start_millis + i * step_millis + jitter` with `0 <= jitter < step/2`, so
//!   times strictly increase through a file and every record of a file lies in
//!   `[start_millis, start_millis + records * step_millis)`.
//!   [`write_sample_dir`] starts each file where the previous one ends.
//! * **Streaming.** [`Generator::next_record`] appends one record to a buffer
//!   and [`write_sample`] hands the writer 64 KiB chunks, so a file of several
//!   GB is written in constant memory.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

/// Epoch milliseconds of 2024-11-05T00:00:00Z, the default start of a sample.
pub const DEFAULT_START_MILLIS: i64 = 1_730_764_800_000;

/// How records are laid out in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleLayout {
    /// One JSON array of objects (`[{..},{..}]`).
    Array,
    /// Newline-delimited JSON: one object per line.
    Ndjson,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleConfig {
    /// PRNG seed; default 42.
    pub seed: u64,
    /// Records per file; default 1000.
    pub records: u64,
    /// Array or NDJSON; default [`SampleLayout::Array`].
    pub layout: SampleLayout,
    /// Gzip the output; default true.
    pub gzip: bool,
    /// Epoch ms of the first record; default 2024-11-05T00:00:00Z.
    pub start_millis: i64,
    /// Average spacing between records in ms; default 250.
    pub step_millis: i64,
    /// Array layout only: one record per line with `",\n"` separators
    /// (default true) instead of a compact `[{..},{..}]` on one line.
    pub pretty: bool,
    /// Gzip level 0-9 (values above 9 are taken as 9); default 6, zlib's
    /// default: a good size for committed samples and tests. Use 1
    /// (`Compression::fast()`) for the gigabyte memory benchmark, where the
    /// compressor and not the generator would otherwise set the pace.
    pub gzip_level: u32,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            seed: 42,
            records: 1000,
            layout: SampleLayout::Array,
            gzip: true,
            start_millis: DEFAULT_START_MILLIS,
            step_millis: 250,
            pretty: true,
            gzip_level: 6,
        }
    }
}

/// What [`write_sample`] / [`write_sample_dir`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleStats {
    /// Records written.
    pub records: u64,
    /// Uncompressed JSON bytes, separators included.
    pub json_bytes: u64,
    /// Bytes handed to the writer (compressed when gzip is on).
    pub file_bytes: u64,
}

impl SampleStats {
    fn add(&mut self, other: SampleStats) {
        self.records += other.records;
        self.json_bytes += other.json_bytes;
        self.file_bytes += other.file_bytes;
    }
}

// ---------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------

/// splitmix64: tiny, fast, good enough statistically, and the same everywhere.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift; the bias is far below
    /// anything a sample could show.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_10k / 10_000`.
    fn chance(&mut self, per_10k: u64) -> bool {
        self.below(10_000) < per_10k
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn weighted<T: Copy>(&mut self, items: &[(u32, T)]) -> T {
        let total: u64 = items.iter().map(|(w, _)| u64::from(*w)).sum();
        let mut r = self.below(total);
        for (w, v) in items {
            let w = u64::from(*w);
            if r < w {
                return *v;
            }
            r -= w;
        }
        items[items.len() - 1].1
    }

    /// Picks `k` distinct indices out of `0..n`, in increasing order
    /// (selection sampling), calling `f` for each.
    fn choose_k(&mut self, n: u64, k: u64, mut f: impl FnMut(&mut Rng, usize)) {
        let mut need = k.min(n);
        let mut left = n;
        for idx in 0..n {
            if need == 0 {
                break;
            }
            if self.below(left) < need {
                f(self, idx as usize);
                need -= 1;
            }
            left -= 1;
        }
    }
}

// ---------------------------------------------------------------------------
// Small writers (no allocation, no formatting machinery)
// ---------------------------------------------------------------------------

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

fn push_padded(out: &mut Vec<u8>, v: u64, width: u32) {
    let mut div = 10u64.pow(width - 1);
    while div > 0 {
        out.push(b'0' + ((v / div) % 10) as u8);
        div /= 10;
    }
}

fn push_hex(out: &mut Vec<u8>, v: u64, digits: u32) {
    for k in (0..digits).rev() {
        out.push(HEX[((v >> (4 * k)) & 0xf) as usize]);
    }
}

/// `thousandths` as a JSON number with up to three decimals, trailing zeros
/// trimmed (`12500` -> `12.5`, `3000` -> `3`), as JavaScript prints numbers.
fn push_millis_decimal(out: &mut Vec<u8>, thousandths: u64) {
    push_u64(out, thousandths / 1000);
    let mut frac = thousandths % 1000;
    if frac != 0 {
        out.push(b'.');
        let mut digits = 3;
        while frac.is_multiple_of(10) {
            frac /= 10;
            digits -= 1;
        }
        push_padded(out, frac, digits);
    }
}

fn push_uuid(out: &mut Vec<u8>, rng: &mut Rng) {
    let a = rng.next_u64();
    let b = rng.next_u64();
    push_hex(out, a >> 32, 8);
    out.push(b'-');
    push_hex(out, (a >> 16) & 0xffff, 4);
    out.push(b'-');
    // version 4, variant 10xx, as uuid v4 has them
    push_hex(out, 0x4000 | (a & 0x0fff), 4);
    out.push(b'-');
    push_hex(out, 0x8000 | (b >> 48 & 0x3fff), 4);
    out.push(b'-');
    push_hex(out, b & 0xffff_ffff_ffff, 12);
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe as i64 + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn push_date(out: &mut Vec<u8>, millis: i64) {
    let (y, m, d) = civil_from_days(millis.div_euclid(86_400_000));
    if y < 0 {
        out.push(b'-');
    }
    if y > 9999 {
        push_u64(out, y as u64);
    } else {
        push_padded(out, y.unsigned_abs(), 4);
    }
    out.push(b'-');
    push_padded(out, u64::from(m), 2);
    out.push(b'-');
    push_padded(out, u64::from(d), 2);
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as JavaScript's `Date.prototype.toISOString`.
fn push_iso_millis(out: &mut Vec<u8>, millis: i64) {
    push_date(out, millis);
    let ms = millis.rem_euclid(86_400_000) as u64;
    out.push(b'T');
    push_padded(out, ms / 3_600_000, 2);
    out.push(b':');
    push_padded(out, ms / 60_000 % 60, 2);
    out.push(b':');
    push_padded(out, ms / 1000 % 60, 2);
    out.push(b'.');
    push_padded(out, ms % 1000, 3);
    out.push(b'Z');
}

/// Writes `s` as the inside of a JSON string (quotes not included).
fn push_json_escaped(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                push_hex(out, u64::from(b), 2);
            }
            _ => out.push(b),
        }
    }
}

/// Percent-encodes `s` as a browser does in a query string: unreserved
/// characters as they are, everything else (non-ASCII included) as `%XX`.
fn push_percent_encoded(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',') {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX[usize::from(b >> 4)].to_ascii_uppercase());
            out.push(HEX[usize::from(b & 0xf)].to_ascii_uppercase());
        }
    }
}

// ---------------------------------------------------------------------------
// Vocabulary. Strings used verbatim inside JSON strings are written already
// escaped (`J_` prefix); strings that are escaped or percent-encoded at run
// time are raw.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

const J_CONTEXTS: &[(u32, &str)] = &[
    (60, "HttpLogger"),
    (10, "DocumentsController"),
    (8, "AuthService"),
    (8, "SearchService"),
    (8, "CacheInterceptor"),
    (6, "ExceptionsHandler"),
];

const J_INFO_MESSAGES: &[(u32, &str)] = &[
    (70, "request completed"),
    (6, "documents fetched"),
    (5, "cache lookup finished"),
    (4, "user authenticated"),
    (4, "document saved"),
    (4, "search executed"),
    (3, "response serialized in 2 chunks"),
    (2, "tag index refreshed"),
    (2, "GET /v1/documents 200 - ok"),
];

const J_DEBUG_MESSAGES: &[&str] = &[
    "cache lookup",
    "query plan selected",
    "sql: SELECT id, title FROM documents WHERE tag = $1 LIMIT $2",
    "resolved route handler DocumentsController.findAll",
    "feature flag \\\"new-search\\\" evaluated to true",
];

const J_TRACE_MESSAGES: &[&str] = &[
    "entering handler",
    "span started",
    "middleware chain: auth -> rateLimit -> handler",
];

const J_WARN_MESSAGES: &[&str] = &[
    "slow request",
    "rate limit nearly exceeded",
    "deprecated query parameter \\\"page\\\" used",
    "request validation failed: limit must be <= 100",
    "upstream responded slowly",
];

const J_ERROR_MESSAGES: &[&str] = &[
    "request errored",
    "database query failed",
    "unhandled exception: Cannot read properties of undefined (reading 'id')",
    "upstream service unavailable",
];

const J_FATAL_MESSAGES: &[&str] = &[
    "process out of memory",
    "database connection pool exhausted, shutting down",
];

/// Messages with non-ASCII text and JSON escapes, used in ~4% of records.
const J_ODD_MESSAGES: &[&str] = &[
    "requête terminée avec succès — café ☕",
    "リクエストが完了しました (日本語)",
    "deploy finished 🚀✨",
    "user said \\\"hello\\\" and left",
    "path C:\\\\logs\\\\app\\\\out.txt not found",
    "multi-line message\\nsecond line\\n\\tindented third",
    "caf\\u00e9 cr\\u00e8me br\\u00fbl\\u00e9e",
    "emoji as escapes \\ud83d\\ude80 and a tab\\there",
    "control char \\u0001 and an escaped slash \\/ here",
    "Ünïcödé 🎉 mixed with \\\"quotes\\\" and \\\\backslashes\\\\",
];

const J_ERR_OBJECTS: &[&str] = &[
    r#"{"type":"Error","message":"connect ECONNREFUSED 10.0.0.5:5432","stack":"Error: connect ECONNREFUSED 10.0.0.5:5432\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1607:16)"}"#,
    r#"{"type":"TypeError","message":"Cannot read properties of undefined (reading 'id')","stack":"TypeError: Cannot read properties of undefined (reading 'id')\n    at DocumentsService.findOne (/app/dist/documents/documents.service.js:42:31)\n    at async DocumentsController.get (/app/dist/documents/documents.controller.js:27:16)"}"#,
    r#"{"type":"QueryFailedError","message":"duplicate key value violates unique constraint \"documents_pkey\"","code":"23505"}"#,
    r#"{"type":"TimeoutError","message":"upstream timed out after 5000 ms"}"#,
];

const J_USER_AGENTS: &[(u32, &str)] = &[
    (
        22,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    ),
    (
        10,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    ),
    (
        8,
        "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    ),
    (
        8,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ),
    (
        6,
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.86 Mobile Safari/537.36",
    ),
    (10, "curl/8.5.0"),
    (8, "okhttp/4.12.0"),
    (8, "python-requests/2.32.3"),
    (10, "axios/1.7.7"),
    (4, "PostmanRuntime/7.42.0"),
    (
        2,
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ),
    (1, "MonAppli/2.1 (Français; système=é)"),
    (1, "日本語クライアント/1.0 (テスト)"),
    (1, "RocketApp/3.0 🚀 (iOS 18.1)"),
    (
        1,
        "Mozilla/5.0 (compatible; \\\"QuotedBot\\\"/1.0; +https://bot.example/\\\\path)",
    ),
];

const J_HOSTS: &[(u32, &str)] = &[
    (70, "api.example.com"),
    (10, "api.example.com:443"),
    (10, "docs-api.internal:3000"),
    (10, "localhost:3000"),
];

const J_ACCEPTS: &[(u32, &str)] = &[
    (55, "application/json"),
    (25, "application/json, text/plain, */*"),
    (16, "*/*"),
    (
        4,
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
];

const J_ACCEPT_ENCODINGS: &[&str] = &["gzip, deflate, br", "gzip", "br, gzip, deflate, zstd"];
const J_ACCEPT_LANGUAGES: &[&str] = &[
    "en-US,en;q=0.9",
    "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7",
    "ja-JP,ja;q=0.9,en;q=0.8",
    "de-DE,de;q=0.9",
];
const J_CONTENT_TYPES: &[(u32, &str)] = &[
    (70, "application/json"),
    (25, "application/json; charset=utf-8"),
    (
        5,
        "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
    ),
];
const J_REFERERS: &[&str] = &[
    "https://app.example.com/documents",
    "https://app.example.com/search?q=caf%C3%A9",
    "https://app.example.com/projects/alpha/files",
];

/// Routes: method, path template (`:name` marks a parameter), weight.
const ROUTES: &[(u32, (&str, &str))] = &[
    (20, ("GET", "/v1/documents")),
    (14, ("GET", "/v1/documents/:id")),
    (8, ("GET", "/v1/users/:userId/documents/:docId")),
    (8, ("GET", "/v1/search")),
    (3, ("GET", "/v1/tags")),
    (5, ("GET", "/v1/users/:userId")),
    (3, ("GET", "/health")),
    (5, ("GET", "/v1/projects/:projectId/files/:fileId")),
    (3, ("GET", "/v1/articles/:slug")),
    (8, ("POST", "/v1/documents")),
    (4, ("POST", "/v1/auth/login")),
    (3, ("POST", "/v1/projects/:projectId/files")),
    (6, ("PUT", "/v1/documents/:id")),
    (5, ("PATCH", "/v1/documents/:id")),
    (2, ("PATCH", "/v1/users/:userId")),
    (4, ("DELETE", "/v1/documents/:id")),
    (2, ("DELETE", "/v1/projects/:projectId/files/:fileId")),
];

const SLUGS: &[&str] = &[
    "quarterly-report-2024",
    "hello-world",
    "release-notes-v2",
    "menu-2024",
    "onboarding",
];
const PROJECTS: &[&str] = &["alpha", "beta", "gamma-7", "delta", "omega"];

/// Flat query keys; values are raw text (escaped / encoded at run time).
const FLAT_KEYS: &[&str] = &[
    "limit", "offset", "sort", "order", "tag", "q", "lang", "status", "include", "cursor",
    "expand", "format",
];
const TAGS: &[&str] = &["a", "b", "news", "finance", "rust", "café", "日本", "q&a"];
const SEARCH_TERMS: &[&str] = &[
    "hello world",
    "café crème",
    "日本語 検索",
    "a&b=c",
    "say \"hi\"",
    "50% off",
    "emoji 🎉",
    "rust",
    "annual report",
];
const STATUSES: &[&str] = &["active", "pending", "archived", "draft"];

const NESTED_KINDS: u64 = 6;

// ---------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------

/// Generator of records; `next_record` appends one record's JSON (no trailing
/// separator) to `out`. Record `i` is stamped
/// `start_millis + i * step_millis + jitter`, `0 <= jitter < step_millis / 2`.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Rng,
    index: u64,
    start_millis: i64,
    step_millis: i64,
    /// `(pid, hostname)` of the few processes writing this file.
    processes: Vec<(u32, String)>,
    /// Scratch: the query string of the URL and the `query` object's inside.
    q_url: Vec<u8>,
    q_json: Vec<u8>,
    enc_brackets: bool,
}

impl Generator {
    /// A generator for `config`'s seed, start and step (the other fields are
    /// for the file writers).
    pub fn new(config: &SampleConfig) -> Self {
        // splitmix64's output mixing makes neighbouring seeds unrelated.
        let mut rng = Rng::new(config.seed);
        let n = rng.range(1, 3);
        let mut processes = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let pid = rng.range(18, 65_000) as u32;
            let mut host = Vec::with_capacity(20);
            host.extend_from_slice(b"api-");
            push_hex(&mut host, rng.next_u64(), 5);
            processes.push((pid, String::from_utf8(host).expect("ascii")));
        }
        Generator {
            rng,
            index: 0,
            start_millis: config.start_millis,
            step_millis: config.step_millis.max(0),
            processes,
            q_url: Vec::with_capacity(256),
            q_json: Vec::with_capacity(256),
            enc_brackets: false,
        }
    }

    /// Appends the next record's JSON object to `out` (nothing is cleared,
    /// no separator is added). One method per field, called in the order the
    /// fields are written: the order of the random draws is the output's.
    pub fn next_record(&mut self, out: &mut Vec<u8>) {
        let i = self.index;
        self.index += 1;
        let time = self.time(i);
        out.extend_from_slice(b"{\"level\":");
        let severity = self.level(out);
        let pid = self.origin(out, time);
        self.message(out, severity);
        let (method, template) = self.rng.weighted(ROUTES);
        out.extend_from_slice(b",\"req\":{\"id\":");
        self.req_id(out, i, pid);
        out.extend_from_slice(b",\"method\":\"");
        push(out, method);
        out.extend_from_slice(b"\",\"url\":\"");
        self.url_query_params(out, template);
        self.headers(out);
        self.remote(out);
        out.push(b'}');
        self.res_err(out, severity, method);
        self.auth_user_id(out);
        self.processing_time(out, severity);
        self.cache_hit(out);
        self.document_count(out, template);
        self.last_updated(out, time);
        out.push(b'}');
    }

    /// Record `i`'s time: `start + i * step + jitter`, `0 <= jitter < step / 2`.
    fn time(&mut self, i: u64) -> i64 {
        let half = (self.step_millis / 2) as u64;
        let jitter = if half > 0 {
            self.rng.below(half) as i64
        } else {
            0
        };
        self.start_millis
            .wrapping_add((i as i64).wrapping_mul(self.step_millis))
            .wrapping_add(jitter)
    }

    /// `level`: mostly 30, some 20/40/50, rarely 10/60, a string or an odd number.
    fn level(&mut self, out: &mut Vec<u8>) -> Severity {
        let r = self.rng.below(10_000);
        if r < 20 {
            push(out, "10");
            Severity::Trace
        } else if r < 50 {
            push(out, "60");
            Severity::Fatal
        } else if r < 80 {
            let (s, sev) = self.rng.pick(&[
                ("\"info\"", Severity::Info),
                ("\"warn\"", Severity::Warn),
                ("\"error\"", Severity::Error),
                ("\"debug\"", Severity::Debug),
            ]);
            push(out, s);
            sev
        } else if r < 100 {
            let (s, sev) = self.rng.pick(&[
                ("35", Severity::Info),
                ("25", Severity::Debug),
                ("45", Severity::Warn),
            ]);
            push(out, s);
            sev
        } else if r < 900 {
            push(out, "20");
            Severity::Debug
        } else if r < 1500 {
            push(out, "40");
            Severity::Warn
        } else if r < 1900 {
            push(out, "50");
            Severity::Error
        } else {
            push(out, "30");
            Severity::Info
        }
    }

    /// `time`, `pid`, `hostname`, `timestamp` (mostly) and `context` (mostly); returns the pid.
    fn origin(&mut self, out: &mut Vec<u8>, time: i64) -> u64 {
        out.extend_from_slice(b",\"time\":");
        push_i64(out, time);
        let process = self.rng.below(self.processes.len() as u64) as usize;
        let pid = u64::from(self.processes[process].0);
        out.extend_from_slice(b",\"pid\":");
        push_u64(out, pid);
        out.extend_from_slice(b",\"hostname\":\"");
        push(out, &self.processes[process].1);
        out.push(b'"');
        if !self.rng.chance(500) {
            out.extend_from_slice(b",\"timestamp\":\"");
            push_iso_millis(out, time);
            out.push(b'"');
        }
        if !self.rng.chance(1500) {
            out.extend_from_slice(b",\"context\":\"");
            push(out, self.rng.weighted(J_CONTEXTS));
            out.push(b'"');
        }
        pid
    }

    /// `msg` or `message`, by severity (a few odd ones).
    fn message(&mut self, out: &mut Vec<u8>, severity: Severity) {
        if self.rng.chance(1000) {
            out.extend_from_slice(b",\"msg\":\"");
        } else {
            out.extend_from_slice(b",\"message\":\"");
        }
        let message = if self.rng.chance(400) {
            self.rng.pick(J_ODD_MESSAGES)
        } else {
            match severity {
                Severity::Trace => self.rng.pick(J_TRACE_MESSAGES),
                Severity::Debug => self.rng.pick(J_DEBUG_MESSAGES),
                Severity::Info => self.rng.weighted(J_INFO_MESSAGES),
                Severity::Warn => self.rng.pick(J_WARN_MESSAGES),
                Severity::Error => self.rng.pick(J_ERROR_MESSAGES),
                Severity::Fatal => self.rng.pick(J_FATAL_MESSAGES),
            }
        };
        push(out, message);
        out.push(b'"');
    }

    /// `req.id`: a number (pino-http's default), a UUID or a `req-` string.
    fn req_id(&mut self, out: &mut Vec<u8>, i: u64, pid: u64) {
        let id_kind = self.rng.below(100);
        if id_kind < 10 {
            // pino-http's default genReqId: an incrementing number
            push_u64(out, 1 + i + pid * 1000);
        } else if id_kind < 15 {
            out.push(b'"');
            push_uuid(out, &mut self.rng);
            out.push(b'"');
        } else {
            out.extend_from_slice(b"\"req-");
            push_hex(out, self.rng.next_u64(), 6);
            out.push(b'"');
        }
    }

    /// `req.url` (path parameters and query string) and its `query` and `params` objects.
    fn url_query_params(&mut self, out: &mut Vec<u8>, template: &str) {
        // path with parameters substituted; params JSON collected meanwhile
        let mut params: [(&str, [u8; 24], usize); 2] = [("", [0; 24], 0); 2];
        let mut n_params = 0;
        for seg in template.split('/').skip(1) {
            out.push(b'/');
            if let Some(name) = seg.strip_prefix(':') {
                let start = out.len();
                self.param_value(name, out);
                let v = &out[start..];
                let slot = &mut params[n_params];
                slot.0 = name;
                slot.1[..v.len()].copy_from_slice(v);
                slot.2 = v.len();
                n_params += 1;
            } else {
                push(out, seg);
            }
        }
        self.gen_query();
        if !self.q_url.is_empty() {
            out.push(b'?');
            out.extend_from_slice(&self.q_url);
        }
        out.extend_from_slice(b"\",\"query\":{");
        out.extend_from_slice(&self.q_json);
        out.extend_from_slice(b"},\"params\":{");
        for (k, (name, buf, len)) in params[..n_params].iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            out.push(b'"');
            push(out, name);
            out.extend_from_slice(b"\":\"");
            out.extend_from_slice(&buf[..*len]);
            out.push(b'"');
        }
        out.push(b'}');
    }

    /// `req.headers`: 3 always, 0-5 optional ones.
    fn headers(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"headers\":{\"host\":\"");
        push(out, self.rng.weighted(J_HOSTS));
        out.extend_from_slice(b"\",\"user-agent\":\"");
        push(out, self.rng.weighted(J_USER_AGENTS));
        out.extend_from_slice(b"\",\"accept\":\"");
        push(out, self.rng.weighted(J_ACCEPTS));
        out.push(b'"');
        let extra = self
            .rng
            .weighted(&[(25, 0), (30, 1), (22, 2), (12, 3), (7, 4), (4, 5)]);
        self.rng.choose_k(8, extra, |rng, h| match h {
            0 => {
                out.extend_from_slice(b",\"x-request-id\":\"");
                push_uuid(out, rng);
                out.push(b'"');
            }
            1 => {
                out.extend_from_slice(b",\"accept-encoding\":\"");
                push(out, rng.pick(J_ACCEPT_ENCODINGS));
                out.push(b'"');
            }
            2 => {
                out.extend_from_slice(b",\"accept-language\":\"");
                push(out, rng.pick(J_ACCEPT_LANGUAGES));
                out.push(b'"');
            }
            3 => {
                out.extend_from_slice(b",\"content-type\":\"");
                push(out, rng.weighted(J_CONTENT_TYPES));
                out.push(b'"');
            }
            4 => {
                out.extend_from_slice(b",\"x-forwarded-for\":\"203.0.113.");
                push_u64(out, rng.range(1, 254));
                out.extend_from_slice(b", 10.0.0.");
                push_u64(out, rng.range(1, 254));
                out.push(b'"');
            }
            5 => {
                out.extend_from_slice(b",\"connection\":\"");
                push(
                    out,
                    if rng.chance(8000) {
                        "keep-alive"
                    } else {
                        "close"
                    },
                );
                out.push(b'"');
            }
            6 => {
                out.extend_from_slice(b",\"authorization\":\"");
                if rng.chance(8500) {
                    push(out, "[Redacted]");
                } else {
                    push(out, "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.");
                    push_hex(out, rng.next_u64(), 16);
                    out.push(b'.');
                    push_hex(out, rng.next_u64(), 16);
                }
                out.push(b'"');
            }
            _ => {
                out.extend_from_slice(b",\"referer\":\"");
                push(out, rng.pick(J_REFERERS));
                out.push(b'"');
            }
        });
        out.push(b'}');
    }

    /// `req.remoteAddress` and `req.remotePort`.
    fn remote(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"remoteAddress\":\"");
        let addr = self.rng.below(10);
        if addr < 2 {
            push(out, "::ffff:");
        }
        if addr == 9 {
            push(out, "::1");
        } else {
            push(out, "10.0.");
            push_u64(out, self.rng.below(16));
            out.push(b'.');
            push_u64(out, self.rng.range(2, 254));
        }
        out.extend_from_slice(b"\",\"remotePort\":");
        push_u64(out, self.rng.range(1024, 65_535));
    }

    /// `res.statusCode` (by severity and method) and, on errors, `err`.
    fn res_err(&mut self, out: &mut Vec<u8>, severity: Severity, method: &str) {
        out.extend_from_slice(b",\"res\":{\"statusCode\":");
        let status: u64 = match severity {
            Severity::Trace | Severity::Debug | Severity::Info => match method {
                "POST" => 201,
                "DELETE" => 204,
                "GET" if self.rng.chance(1000) => 304,
                _ => 200,
            },
            Severity::Warn => self.rng.pick(&[400, 401, 403, 404, 404, 409, 422, 429]),
            Severity::Error | Severity::Fatal => self.rng.pick(&[500, 500, 502, 503, 504]),
        };
        push_u64(out, status);
        out.push(b'}');
        if matches!(severity, Severity::Error | Severity::Fatal) && !self.rng.chance(2000) {
            out.extend_from_slice(b",\"err\":");
            push(out, self.rng.pick(J_ERR_OBJECTS));
        }
    }

    /// `authUserId`: missing in ~30%, a numeric string in ~1%, invalid in ~0.2%.
    fn auth_user_id(&mut self, out: &mut Vec<u8>) {
        let auth = self.rng.below(10_000);
        if auth >= 3000 {
            out.extend_from_slice(b",\"authUserId\":");
            let user = self.rng.range(1, 20_000);
            if auth < 3100 {
                out.push(b'"');
                push_u64(out, user);
                out.push(b'"');
            } else if auth < 3120 {
                push(
                    out,
                    self.rng
                        .pick(&["\"abc\"", "\"\"", "\"user-12\"", "\"12x\""]),
                );
            } else {
                push_u64(out, user);
            }
        }
    }

    /// `processingTimeMs`, longer on warnings and errors.
    fn processing_time(&mut self, out: &mut Vec<u8>, severity: Severity) {
        if !self.rng.chance(800) {
            out.extend_from_slice(b",\"processingTimeMs\":");
            let t = match severity {
                Severity::Warn | Severity::Error | Severity::Fatal => {
                    self.rng.range(200_000, 5_000_000)
                }
                _ if self.rng.chance(500) => self.rng.range(200_000, 2_000_000),
                _ => self.rng.range(150, 120_000),
            };
            push_millis_decimal(out, t);
        }
    }

    /// `cacheHit`.
    fn cache_hit(&mut self, out: &mut Vec<u8>) {
        if !self.rng.chance(2500) {
            out.extend_from_slice(b",\"cacheHit\":");
            push(
                out,
                if self.rng.chance(6000) {
                    "true"
                } else {
                    "false"
                },
            );
        }
    }

    /// `documentCount`, larger on the listing routes.
    fn document_count(&mut self, out: &mut Vec<u8>, template: &str) {
        if !self.rng.chance(3000) {
            out.extend_from_slice(b",\"documentCount\":");
            let n = if template == "/v1/documents" || template == "/v1/search" {
                self.rng.below(101)
            } else {
                self.rng.below(2)
            };
            push_u64(out, n);
        }
    }

    /// `lastUpdated`: up to a week before the record.
    fn last_updated(&mut self, out: &mut Vec<u8>, time: i64) {
        if !self.rng.chance(3500) {
            out.extend_from_slice(b",\"lastUpdated\":\"");
            let back = self.rng.below(7 * 86_400) as i64 * 1000;
            let ms = if self.rng.chance(5000) {
                self.rng.below(1000) as i64
            } else {
                0
            };
            push_iso_millis(out, (time - back).div_euclid(1000) * 1000 + ms);
            out.push(b'"');
        }
    }

    /// A path parameter's value (URL-safe, at most 24 bytes).
    fn param_value(&mut self, name: &str, out: &mut Vec<u8>) {
        match name {
            "slug" => push(out, self.rng.pick(SLUGS)),
            "projectId" => push(out, self.rng.pick(PROJECTS)),
            "fileId" => push_hex(out, self.rng.next_u64(), 12),
            _ => push_u64(out, self.rng.range(1, 99_999)),
        }
    }

    /// Fills `q_url` (query string, without `?`) and `q_json` (the inside of
    /// the `query` object) consistently; ~35% of calls put in a nested value.
    fn gen_query(&mut self) {
        self.q_url.clear();
        self.q_json.clear();
        self.enc_brackets = self.rng.chance(3000);
        let nested = self.rng.chance(3500);
        let (n_flat, n_nested) = if nested {
            let total = self.rng.range(1, 5);
            let n_nested = if total >= 2 && self.rng.chance(2000) {
                2
            } else {
                1
            };
            (total - n_nested, n_nested)
        } else {
            let n = self
                .rng
                .weighted(&[(30, 0u64), (20, 1), (20, 2), (15, 3), (10, 4), (5, 5)]);
            (n, 0)
        };
        // nested values go at a random position among the flat ones
        let nested_at = self.rng.below(n_flat + 1);
        let mut flat_keys = [0usize; 5];
        let mut k = 0;
        self.rng.choose_k(FLAT_KEYS.len() as u64, n_flat, |_, idx| {
            flat_keys[k] = idx;
            k += 1;
        });
        let mut nested_kinds = [0usize; 2];
        let mut k = 0;
        self.rng.choose_k(NESTED_KINDS, n_nested, |_, idx| {
            nested_kinds[k] = idx;
            k += 1;
        });
        // selection sampling keeps pool order; rotate for some variety
        let flat_keys = &mut flat_keys[..n_flat as usize];
        if n_flat > 1 {
            flat_keys.rotate_left(self.rng.below(n_flat) as usize);
        }
        let (before, after) = flat_keys.split_at(nested_at as usize);
        for &key in before {
            self.flat_value(key);
        }
        for &kind in &nested_kinds[..n_nested as usize] {
            self.nested_value(kind);
        }
        for &key in after {
            self.flat_value(key);
        }
    }

    fn json_key(&mut self, key: &str) {
        if !self.q_json.is_empty() {
            self.q_json.push(b',');
        }
        self.q_json.push(b'"');
        push(&mut self.q_json, key);
        self.q_json.extend_from_slice(b"\":");
    }

    /// Appends `key[path0][path1]...=` to the query string (`""` gives `[]`).
    fn url_key(&mut self, key: &str, path: &[&str]) {
        if !self.q_url.is_empty() {
            self.q_url.push(b'&');
        }
        push(&mut self.q_url, key);
        for p in path {
            push(&mut self.q_url, if self.enc_brackets { "%5B" } else { "[" });
            push(&mut self.q_url, p);
            push(&mut self.q_url, if self.enc_brackets { "%5D" } else { "]" });
        }
        self.q_url.push(b'=');
    }

    /// A string value: JSON-escaped into `q_json`, percent-encoded into `q_url`.
    fn both_value(&mut self, raw: &str) {
        self.q_json.push(b'"');
        push_json_escaped(&mut self.q_json, raw);
        self.q_json.push(b'"');
        push_percent_encoded(&mut self.q_url, raw);
    }

    fn both_number(&mut self, v: u64) {
        self.q_json.push(b'"');
        let start = self.q_json.len();
        push_u64(&mut self.q_json, v);
        self.q_url.extend_from_slice(&self.q_json[start..]);
        self.q_json.push(b'"');
    }

    /// 1-3 distinct values of `pool`: JSON array elements (no brackets) and
    /// one `key[path..]=value` pair each.
    fn string_list(&mut self, key: &str, path: &[&str], pool: &[&str]) {
        let n = self.rng.range(1, 3);
        let mut picked = [0usize; 3];
        let mut count = 0;
        self.rng.choose_k(pool.len() as u64, n, |_, idx| {
            picked[count] = idx;
            count += 1;
        });
        // selection sampling keeps pool order; rotate for some variety
        let shift = self.rng.below(count as u64) as usize;
        picked[..count].rotate_left(shift);
        for (j, &idx) in picked[..count].iter().enumerate() {
            if j > 0 {
                self.q_json.push(b',');
            }
            self.url_key(key, path);
            self.both_value(pool[idx]);
        }
    }

    fn flat_value(&mut self, idx: usize) {
        let key = FLAT_KEYS[idx];
        self.json_key(key);
        self.url_key(key, &[]);
        match key {
            "limit" => {
                let v = self.rng.pick(&[10, 20, 25, 50, 100]);
                self.both_number(v);
            }
            "offset" => {
                let v = self.rng.below(50) * 10;
                self.both_number(v);
            }
            "sort" => {
                let v = self
                    .rng
                    .pick(&["createdAt", "-updatedAt", "title", "name,-id"]);
                self.both_value(v);
            }
            "order" => {
                let v = self.rng.pick(&["asc", "desc"]);
                self.both_value(v);
            }
            "tag" => {
                let v = self.rng.pick(TAGS);
                self.both_value(v);
            }
            "q" => {
                let v = self.rng.pick(SEARCH_TERMS);
                self.both_value(v);
            }
            "lang" => {
                let v = self.rng.pick(&["en", "fr", "ja", "de"]);
                self.both_value(v);
            }
            "status" => {
                let v = self.rng.pick(STATUSES);
                self.both_value(v);
            }
            "include" => {
                let v = self.rng.pick(&["author", "author,tags", "comments"]);
                self.both_value(v);
            }
            "cursor" => {
                self.q_json.push(b'"');
                let start = self.q_json.len();
                push_hex(&mut self.q_json, self.rng.next_u64(), 16);
                self.q_url.extend_from_slice(&self.q_json[start..]);
                self.q_json.push(b'"');
            }
            "expand" => {
                let v = self.rng.pick(&["true", "false"]);
                self.both_value(v);
            }
            _ => {
                let v = self.rng.pick(&["json", "csv"]);
                self.both_value(v);
            }
        }
    }

    fn nested_value(&mut self, kind: usize) {
        match kind {
            0 => {
                // filter: {"tag":["a","b"]} | {"status":{"in":[..]}} | {"author":"42","published":"true"}
                self.json_key("filter");
                match self.rng.below(3) {
                    0 => {
                        self.q_json.extend_from_slice(b"{\"tag\":[");
                        self.string_list("filter", &["tag", ""], TAGS);
                        self.q_json.extend_from_slice(b"]}");
                    }
                    1 => {
                        self.q_json.extend_from_slice(b"{\"status\":{\"in\":[");
                        self.string_list("filter", &["status", "in", ""], STATUSES);
                        self.q_json.extend_from_slice(b"]}}");
                    }
                    _ => {
                        self.q_json.extend_from_slice(b"{\"author\":");
                        self.url_key("filter", &["author"]);
                        let v = self.rng.range(1, 20_000);
                        self.both_number(v);
                        self.q_json.extend_from_slice(b",\"published\":");
                        self.url_key("filter", &["published"]);
                        let v = self.rng.pick(&["true", "false"]);
                        self.both_value(v);
                        self.q_json.push(b'}');
                    }
                }
            }
            1 => {
                // ids: ["12","15"], as ids[]=12&ids[]=15 or ids[0]=12&ids[1]=15
                self.json_key("ids");
                self.q_json.push(b'[');
                let indexed = self.rng.chance(3000);
                let n = self.rng.range(1, 4);
                for j in 0..n {
                    if j > 0 {
                        self.q_json.push(b',');
                    }
                    let idx = ["0", "1", "2", "3"][j as usize];
                    self.url_key("ids", &[if indexed { idx } else { "" }]);
                    let v = self.rng.range(1, 99_999);
                    self.both_number(v);
                }
                self.q_json.push(b']');
            }
            2 => {
                // range: {"from":"2024-11-01","to":"2024-11-05"}
                self.json_key("range");
                let to = self.start_millis + self.index as i64 * self.step_millis
                    - self.rng.below(3) as i64 * 86_400_000;
                let from = to - self.rng.range(1, 30) as i64 * 86_400_000;
                for (j, (name, ms)) in [("from", from), ("to", to)].into_iter().enumerate() {
                    self.q_json
                        .extend_from_slice(if j == 0 { b"{\"" } else { b",\"" });
                    push(&mut self.q_json, name);
                    self.q_json.extend_from_slice(b"\":\"");
                    self.url_key("range", &[name]);
                    let start = self.q_json.len();
                    push_date(&mut self.q_json, ms);
                    self.q_url.extend_from_slice(&self.q_json[start..]);
                    self.q_json.push(b'"');
                }
                self.q_json.push(b'}');
            }
            3 => {
                // page: {"number":"3","size":"20"}
                self.json_key("page");
                self.q_json.extend_from_slice(b"{\"number\":");
                self.url_key("page", &["number"]);
                let v = self.rng.range(1, 40);
                self.both_number(v);
                self.q_json.extend_from_slice(b",\"size\":");
                self.url_key("page", &["size"]);
                let v = self.rng.pick(&[10, 20, 50]);
                self.both_number(v);
                self.q_json.push(b'}');
            }
            4 => {
                // JSON:API sparse fieldsets: {"documents":"title,author"}
                self.json_key("fields");
                self.q_json.extend_from_slice(b"{\"documents\":");
                self.url_key("fields", &["documents"]);
                let v = self
                    .rng
                    .pick(&["title,author", "title", "id,title,updatedAt"]);
                self.both_value(v);
                if self.rng.chance(5000) {
                    self.q_json.extend_from_slice(b",\"users\":");
                    self.url_key("fields", &["users"]);
                    let v = self.rng.pick(&["name", "name,email"]);
                    self.both_value(v);
                }
                self.q_json.push(b'}');
            }
            _ => {
                // deeper nesting: {"client":{"name":"web","version":"2.4.1"}}
                self.json_key("meta");
                self.q_json.extend_from_slice(b"{\"client\":{\"name\":");
                self.url_key("meta", &["client", "name"]);
                let v = self.rng.pick(&["web", "ios", "android", "cli tool"]);
                self.both_value(v);
                self.q_json.extend_from_slice(b",\"version\":");
                self.url_key("meta", &["client", "version"]);
                let v = self.rng.pick(&["2.4.1", "3.0.0-beta.2", "1.9"]);
                self.both_value(v);
                self.q_json.extend_from_slice(b"}}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/// Records are gathered into chunks of about this size before each write.
const CHUNK: usize = 64 * 1024;

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the uncompressed body; returns its length in bytes.
fn write_body<W: Write>(config: &SampleConfig, w: &mut W) -> io::Result<u64> {
    let mut generator = Generator::new(config);
    let mut buf = Vec::with_capacity(CHUNK + 8 * 1024);
    let mut total = 0u64;
    let array = config.layout == SampleLayout::Array;
    let pretty = config.pretty;
    if array {
        buf.extend_from_slice(if pretty { b"[\n" } else { b"[" });
    }
    for i in 0..config.records {
        if array && i > 0 {
            buf.extend_from_slice(if pretty { b",\n" } else { b"," });
        }
        generator.next_record(&mut buf);
        if !array {
            buf.push(b'\n');
        }
        if buf.len() >= CHUNK {
            w.write_all(&buf)?;
            total += buf.len() as u64;
            buf.clear();
        }
    }
    if array {
        buf.extend_from_slice(if pretty { b"\n]\n" } else { b"]" });
    }
    w.write_all(&buf)?;
    total += buf.len() as u64;
    Ok(total)
}

/// Writes one whole file (array or NDJSON, gzip or plain) to `w`, streaming:
/// memory use does not grow with `config.records`.
///
/// An array file is `[\n{..},\n{..}\n]\n` when `pretty`, else `[{..},{..}]`;
/// an NDJSON file is `{..}\n{..}\n`. Gzip output is one gzip member at
/// `config.gzip_level`. The writer is flushed, not closed.
pub fn write_sample<W: Write>(config: &SampleConfig, w: W) -> io::Result<SampleStats> {
    let mut counter = CountingWriter { inner: w, count: 0 };
    let json_bytes = if config.gzip {
        let mut encoder = GzEncoder::new(&mut counter, Compression::new(config.gzip_level.min(9)));
        let n = write_body(config, &mut encoder)?;
        encoder.finish()?;
        n
    } else {
        write_body(config, &mut counter)?
    };
    counter.flush()?;
    Ok(SampleStats {
        records: config.records,
        json_bytes,
        file_bytes: counter.count,
    })
}

/// The file name [`write_sample_dir`] gives file `index` starting at
/// `start_millis`: `logs-YYYY-MM-DD-HHMM-NNNN.json[.gz]` (`.ndjson[.gz]`).
fn sample_file_name(config: &SampleConfig, start_millis: i64, index: usize) -> String {
    let stamp = chrono::DateTime::from_timestamp_millis(start_millis)
        .map(|t| t.format("%Y-%m-%d-%H%M").to_string())
        .unwrap_or_else(|| "0000-00-00-0000".to_string());
    let ext = match config.layout {
        SampleLayout::Array => "json",
        SampleLayout::Ndjson => "ndjson",
    };
    let gz = if config.gzip { ".gz" } else { "" };
    format!("logs-{stamp}-{index:04}.{ext}{gz}")
}

/// Writes `files` files named `logs-YYYY-MM-DD-HHMM-NNNN.json[.gz]` (or
/// `.ndjson[.gz]`) into `dir` (created if missing). File `i` (`NNNN`, from 0)
/// uses seed `config.seed + i` and starts at
/// `config.start_millis + i * config.records * config.step_millis`, where the
/// previous file ends, so files are in time order and their names sort in
/// that order. Returns the total stats.
pub fn write_sample_dir(
    config: &SampleConfig,
    dir: &Path,
    files: usize,
) -> io::Result<SampleStats> {
    fs::create_dir_all(dir)?;
    let span = (config.records as i64).saturating_mul(config.step_millis.max(0));
    let mut total = SampleStats::default();
    for i in 0..files {
        let mut file_config = config.clone();
        file_config.seed = config.seed.wrapping_add(i as u64);
        file_config.start_millis = config
            .start_millis
            .saturating_add(span.saturating_mul(i as i64));
        let path = dir.join(sample_file_name(&file_config, file_config.start_millis, i));
        let mut file = BufWriter::new(fs::File::create(&path)?);
        let stats = write_sample(&file_config, &mut file)?;
        file.flush()?;
        total.add(stats);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Length and FNV-1a hash of `write_sample` with the default config,
    /// plain (see `known_output_does_not_drift`).
    const KNOWN_LEN: usize = 747_005;
    const KNOWN_HASH: u64 = 11_717_507_555_665_154_009;
    use std::io::{BufRead, Read};

    fn records(config: &SampleConfig, n: usize) -> Vec<Vec<u8>> {
        let mut generator = Generator::new(config);
        (0..n)
            .map(|_| {
                let mut out = Vec::new();
                generator.next_record(&mut out);
                out
            })
            .collect()
    }

    fn parse(record: &[u8]) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_slice::<serde_json::Value>(record) {
            Ok(serde_json::Value::Object(map)) => map,
            other => panic!(
                "not a JSON object: {other:?}: {}",
                String::from_utf8_lossy(record)
            ),
        }
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Counts bytes and keeps nothing.
    struct Counter(u64);

    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_record_is_a_json_object() {
        let config = SampleConfig::default();
        for record in records(&config, 20_000) {
            let map = parse(&record);
            assert!(map.contains_key("level") && map.contains_key("time"));
            assert!(map.contains_key("message") ^ map.contains_key("msg"));
            assert!(map["req"].is_object());
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let config = SampleConfig {
            records: 3000,
            ..SampleConfig::default()
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_sample(&config, &mut a).unwrap();
        write_sample(&config, &mut b).unwrap();
        assert_eq!(a, b);
        let mut c = Vec::new();
        let other = SampleConfig {
            seed: 43,
            ..config.clone()
        };
        write_sample(&other, &mut c).unwrap();
        assert_ne!(gunzip(&a), gunzip(&c));
    }

    #[test]
    fn known_output_does_not_drift() {
        // Pins the generated bytes (FNV-1a of 1000 records): a change here
        // changes every sample file, test expectation and benchmark input, so
        // make it on purpose and update the constants. Only the JSON is
        // pinned: gzip bytes may change with the flate2 / zlib-rs version.
        let config = SampleConfig {
            gzip: false,
            ..SampleConfig::default()
        };
        let mut out = Vec::new();
        write_sample(&config, &mut out).unwrap();
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for &b in &out {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let first = out.split(|&b| b == b'\n').nth(1).unwrap();
        assert_eq!(
            (out.len(), hash),
            (KNOWN_LEN, KNOWN_HASH),
            "first record: {}",
            String::from_utf8_lossy(first)
        );
    }

    #[test]
    fn array_layout_parses_as_one_array() {
        for pretty in [true, false] {
            let config = SampleConfig {
                records: 500,
                gzip: false,
                pretty,
                ..SampleConfig::default()
            };
            let mut bytes = Vec::new();
            let stats = write_sample(&config, &mut bytes).unwrap();
            assert_eq!(stats.json_bytes, bytes.len() as u64);
            assert_eq!(stats.file_bytes, bytes.len() as u64);
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let array = value.as_array().unwrap();
            assert_eq!(array.len(), 500);
            assert!(array.iter().all(|v| v.is_object()));
            let lines = bytes.iter().filter(|&&b| b == b'\n').count();
            assert_eq!(lines, if pretty { 502 } else { 0 });
        }
        for pretty in [true, false] {
            let config = SampleConfig {
                records: 0,
                gzip: false,
                pretty,
                ..SampleConfig::default()
            };
            let mut bytes = Vec::new();
            write_sample(&config, &mut bytes).unwrap();
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(value, serde_json::json!([]));
        }
    }

    #[test]
    fn gzip_array_round_trips() {
        let config = SampleConfig {
            records: 700,
            ..SampleConfig::default()
        };
        let mut gz = Vec::new();
        let stats = write_sample(&config, &mut gz).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert_eq!(stats.file_bytes, gz.len() as u64);
        let plain = gunzip(&gz);
        assert_eq!(stats.json_bytes, plain.len() as u64);
        let mut expected = Vec::new();
        write_sample(
            &SampleConfig {
                gzip: false,
                ..config
            },
            &mut expected,
        )
        .unwrap();
        assert_eq!(plain, expected);
    }

    #[test]
    fn ndjson_layout_has_one_object_per_line() {
        let config = SampleConfig {
            records: 800,
            layout: SampleLayout::Ndjson,
            ..SampleConfig::default()
        };
        let mut gz = Vec::new();
        write_sample(&config, &mut gz).unwrap();
        let plain = gunzip(&gz);
        assert_eq!(plain.last(), Some(&b'\n'));
        let lines: Vec<_> = plain.lines().map(Result::unwrap).collect();
        assert_eq!(lines.len(), 800);
        for line in lines {
            parse(line.as_bytes());
        }
    }

    #[test]
    fn average_record_size_is_realistic() {
        let config = SampleConfig {
            records: 20_000,
            layout: SampleLayout::Ndjson,
            gzip: false,
            ..SampleConfig::default()
        };
        let mut counter = Counter(0);
        let stats = write_sample(&config, &mut counter).unwrap();
        let average = (stats.json_bytes - stats.records) as f64 / stats.records as f64;
        assert!((600.0..=850.0).contains(&average), "average {average}");
    }

    fn nested(value: &serde_json::Value) -> bool {
        value.is_object() || value.is_array()
    }

    #[test]
    fn about_a_third_of_queries_are_nested_and_agree_with_the_url() {
        let n = 20_000;
        let mut with_nested = 0;
        for record in records(&SampleConfig::default(), n) {
            let map = parse(&record);
            let req = map["req"].as_object().unwrap();
            let query = req["query"].as_object().unwrap();
            assert!(query.len() <= 5);
            if query.values().any(nested) {
                with_nested += 1;
            }
            let url = req["url"].as_str().unwrap();
            // every top-level query key shows in the query string
            let query_string = url.split_once('?').map(|(_, q)| q).unwrap_or("");
            assert_eq!(query.is_empty(), query_string.is_empty(), "{url}");
            for key in query.keys() {
                assert!(
                    query_string
                        .split('&')
                        .any(|pair| pair.starts_with(key.as_str())),
                    "{key} not in {url}"
                );
            }
            let params = req["params"].as_object().unwrap();
            assert!(params.len() <= 2);
            for value in params.values() {
                assert!(url.contains(value.as_str().unwrap()), "{url}");
            }
            let headers = req["headers"].as_object().unwrap();
            assert!((3..=8).contains(&headers.len()), "{headers:?}");
        }
        let share = with_nested as f64 / n as f64;
        assert!((0.32..=0.38).contains(&share), "nested share {share}");
    }

    #[test]
    fn variety_is_there() {
        let n = 50_000;
        let mut counts = std::collections::HashMap::<&str, usize>::new();
        let mut bump = |k| *counts.entry(k).or_default() += 1;
        for record in records(&SampleConfig::default(), n) {
            let text = std::str::from_utf8(&record).unwrap();
            let map = parse(&record);
            match &map["level"] {
                serde_json::Value::String(_) => bump("level-string"),
                serde_json::Value::Number(l) => match l.as_u64().unwrap() {
                    30 => bump("level-30"),
                    10 | 20 | 40 | 50 | 60 => bump("level-other"),
                    _ => bump("level-unusual"),
                },
                other => panic!("level {other}"),
            }
            if map.contains_key("msg") {
                bump("msg");
            }
            if !map.contains_key("timestamp") {
                bump("no-timestamp");
            }
            match map.get("authUserId") {
                None => bump("no-auth"),
                Some(serde_json::Value::String(s)) if s.parse::<u64>().is_ok() => {
                    bump("auth-numeric-string")
                }
                Some(serde_json::Value::String(_)) => bump("auth-invalid"),
                Some(v) => assert!(v.is_u64()),
            }
            if map["req"]["id"].is_number() {
                bump("req-id-number");
            }
            if !text.is_ascii() {
                bump("non-ascii");
            }
            if text.contains("\\u") {
                bump("unicode-escape");
            }
            if text.contains("\\\"") {
                bump("quote-escape");
            }
            for key in [
                "context",
                "processingTimeMs",
                "cacheHit",
                "documentCount",
                "lastUpdated",
            ] {
                if !map.contains_key(key) {
                    bump(key);
                }
            }
        }
        let share = |k: &str| counts.get(k).copied().unwrap_or(0) as f64 / n as f64;
        let within = |k: &str, lo: f64, hi: f64| {
            let s = share(k);
            assert!((lo..=hi).contains(&s), "{k}: {s} not in {lo}..={hi}");
        };
        within("level-30", 0.75, 0.87);
        within("level-other", 0.12, 0.22);
        within("level-string", 0.001, 0.006);
        within("level-unusual", 0.0005, 0.005);
        within("msg", 0.08, 0.12);
        within("no-timestamp", 0.04, 0.06);
        within("no-auth", 0.28, 0.32);
        within("auth-numeric-string", 0.007, 0.013);
        within("auth-invalid", 0.001, 0.004);
        within("req-id-number", 0.08, 0.12);
        within("non-ascii", 0.02, 0.2);
        within("unicode-escape", 0.002, 0.1);
        within("quote-escape", 0.002, 0.1);
        for key in [
            "context",
            "processingTimeMs",
            "cacheHit",
            "documentCount",
            "lastUpdated",
        ] {
            within(key, 0.05, 0.4);
        }
    }

    #[test]
    fn times_increase_and_agree_with_timestamps() {
        let config = SampleConfig {
            start_millis: 1_730_764_800_000,
            step_millis: 250,
            ..SampleConfig::default()
        };
        let n = 5000u64;
        let mut previous = i64::MIN;
        for record in records(&config, n as usize) {
            let map = parse(&record);
            let time = map["time"].as_i64().unwrap();
            assert!(time > previous);
            assert!(time >= config.start_millis);
            assert!(time < config.start_millis + n as i64 * config.step_millis);
            previous = time;
            if let Some(ts) = map.get("timestamp") {
                let parsed = chrono::DateTime::parse_from_rfc3339(ts.as_str().unwrap()).unwrap();
                assert_eq!(parsed.timestamp_millis(), time);
            }
            if let Some(updated) = map.get("lastUpdated") {
                let parsed =
                    chrono::DateTime::parse_from_rfc3339(updated.as_str().unwrap()).unwrap();
                assert!(parsed.timestamp_millis() <= time + 1000);
            }
        }
    }

    #[test]
    fn iso_formatting_matches_chrono() {
        let mut rng = Rng::new(7);
        let mut out = Vec::new();
        for k in 0..20_000 {
            // from 0001 to 9999, plus the edges
            let ms = match k {
                0 => 0,
                1 => -1,
                2 => 253_402_300_799_999,
                _ => {
                    rng.below(253_402_300_799_999 + 62_135_596_800_000) as i64 - 62_135_596_800_000
                }
            };
            out.clear();
            push_iso_millis(&mut out, ms);
            let expected = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
        }
    }

    #[test]
    fn streams_200k_records_in_constant_memory() {
        for gzip in [false, true] {
            let config = SampleConfig {
                records: 200_000,
                gzip,
                gzip_level: 1,
                ..SampleConfig::default()
            };
            let mut counter = Counter(0);
            let stats = write_sample(&config, &mut counter).unwrap();
            assert_eq!(stats.records, 200_000);
            assert_eq!(stats.file_bytes, counter.0);
            assert!(stats.json_bytes > 200_000 * 600);
            if gzip {
                assert!(stats.file_bytes < stats.json_bytes / 4);
            } else {
                assert_eq!(stats.file_bytes, stats.json_bytes);
            }
        }
    }

    #[test]
    fn sample_dir_files_are_named_and_time_ordered() {
        let dir = std::env::temp_dir().join(format!(
            "ingestor-sample-test-{}-{}",
            std::process::id(),
            line!()
        ));
        let _ = fs::remove_dir_all(&dir);
        let config = SampleConfig {
            seed: 1,
            records: 100,
            ..SampleConfig::default()
        };
        let stats = write_sample_dir(&config, &dir.join("nested/dir"), 3).unwrap();
        assert_eq!(stats.records, 300);
        let mut names: Vec<String> = fs::read_dir(dir.join("nested/dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "logs-2024-11-05-0000-0000.json.gz",
                "logs-2024-11-05-0000-0001.json.gz",
                "logs-2024-11-05-0000-0002.json.gz",
            ]
        );
        let mut previous = i64::MIN;
        let mut json_bytes = 0;
        for (i, name) in names.iter().enumerate() {
            let plain = gunzip(&fs::read(dir.join("nested/dir").join(name)).unwrap());
            json_bytes += plain.len() as u64;
            let value: serde_json::Value = serde_json::from_slice(&plain).unwrap();
            let array = value.as_array().unwrap();
            assert_eq!(array.len(), 100);
            for record in array {
                let time = record["time"].as_i64().unwrap();
                assert!(time > previous);
                previous = time;
            }
            // file i is what write_sample gives for seed + i
            let mut expected = Vec::new();
            write_sample(
                &SampleConfig {
                    seed: 1 + i as u64,
                    start_millis: config.start_millis + i as i64 * 100 * 250,
                    gzip: false,
                    ..config.clone()
                },
                &mut expected,
            )
            .unwrap();
            assert_eq!(plain, expected);
        }
        assert_eq!(stats.json_bytes, json_bytes);
        fs::remove_dir_all(&dir).unwrap();
    }
}
