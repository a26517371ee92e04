//! What minc prints besides results: `--explain` steps (`+ mount ...`) and warnings on
//! stderr, and with `--log FILE` a text or JSON log like runc's (OCI clients read it).

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

/// Collects an event's message (and other fields, `key=value`) into one line.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// Prints `explain` events as `+ command` and warnings as `minc: warning: ...` on stderr.
struct Stderr {
    explain: bool,
    debug: bool,
}

impl<S: Subscriber> Layer<S> for Stderr {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let explain = meta.target() == "explain";
        let show = if explain {
            self.explain
        } else {
            *meta.level() == Level::WARN || (self.debug && *meta.level() <= Level::DEBUG)
        };
        if !show {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        let text = if explain {
            format!("+ {}\n", line.0)
        } else {
            format!(
                "minc: {}: {}\n",
                meta.level().as_str().to_lowercase(),
                line.0
            )
        };
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// runc-style log file: one line per event, text or JSON (`{"level","msg","time"}`).
struct File {
    file: Mutex<std::fs::File>,
    json: bool,
    debug: bool,
}

impl<S: Subscriber> Layer<S> for File {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let level = *meta.level();
        if !(level <= Level::WARN || self.debug) {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        let time = crate::cli::format::rfc3339(std::time::SystemTime::now());
        let level = level.as_str().to_lowercase();
        let text = if self.json {
            serde_json::json!({"level": level, "msg": line.0, "time": time}).to_string() + "\n"
        } else {
            format!("time=\"{time}\" level={level} msg={:?}\n", line.0)
        };
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

pub struct Options<'a> {
    pub explain: bool,
    pub debug: bool,
    pub log: Option<&'a std::path::Path>,
    pub json: bool,
}

/// Installs the subscriber. A log file that cannot be opened is reported, not fatal.
pub fn init(o: &Options) {
    let file = o.log.and_then(|p| {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Some(File {
                file: Mutex::new(f),
                json: o.json,
                debug: o.debug,
            }),
            Err(e) => {
                eprintln!("minc: warning: log file {}: {e}", p.display());
                None
            }
        }
    });
    let subscriber = Registry::default()
        .with(Stderr {
            explain: o.explain,
            debug: o.debug,
        })
        .with(file);
    let _ = tracing::subscriber::set_global_default(subscriber);
}
