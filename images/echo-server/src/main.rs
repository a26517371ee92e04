//! echo-server: the demo HTTP server of minc's built-in `echo-server` image.
//!
//! `GET /echo` answers `{"header": {request headers}, "body": "Echo response"}`; `POST /echo`
//! echoes the request body in the same shape. One line per request goes to stdout. It uses
//! only the standard library so it can be compiled into a static binary with plain `rustc`
//! (see images/build.rs) and needs nothing in the image but itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// Largest request body accepted (the demo has no use for more).
const MAX_BODY: usize = 1 << 20;

fn main() {
    let mut listen = String::from("0.0.0.0:8000");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" | "-l" => listen = args.next().unwrap_or_else(|| usage()),
            "--port" | "-p" => {
                listen = format!("0.0.0.0:{}", args.next().unwrap_or_else(|| usage()))
            }
            _ => usage(),
        }
    }
    exit_on_sigterm();
    let listener = TcpListener::bind(&listen).unwrap_or_else(|e| {
        eprintln!("echo-server: listen on {listen}: {e}");
        std::process::exit(1);
    });
    println!("echo-server listening on {listen}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = serve(stream);
        });
    }
}

fn usage() -> ! {
    eprintln!("usage: echo-server [--listen ADDR:PORT | --port PORT]");
    std::process::exit(2);
}

/// As PID 1 of a container, a process only receives the signals it handles: exit on SIGTERM
/// and SIGINT so `minc stop` and Ctrl-C work without falling back to SIGKILL. (std only, so
/// libc's `signal` is declared by hand.)
fn exit_on_sigterm() {
    extern "C" {
        fn signal(sig: i32, handler: extern "C" fn(i32)) -> usize;
    }
    extern "C" fn on_term(_: i32) {
        std::process::exit(0);
    }
    // SAFETY: installs a handler that only exits the process.
    unsafe {
        signal(15, on_term);
        signal(2, on_term);
    }
}

/// Serves one connection: keep-alive requests until the client closes or asks to.
fn serve(stream: TcpStream) -> std::io::Result<()> {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path, version) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("HTTP/1.0").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if len > MAX_BODY {
            respond(
                &mut out,
                413,
                "text/plain",
                b"request body too large\n",
                false,
            )?;
            return Ok(());
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        let keep_alive = match header("connection") {
            Some(c) if c.eq_ignore_ascii_case("close") => false,
            Some(c) if c.eq_ignore_ascii_case("keep-alive") => true,
            _ => version == "HTTP/1.1",
        };
        let status = match (method.as_str(), path.as_str()) {
            ("GET", "/echo") | ("POST", "/echo") => {
                let text = if method == "GET" {
                    "Echo response".to_string()
                } else {
                    String::from_utf8_lossy(&body).into_owned()
                };
                let json = echo_json(&headers, &text);
                respond(
                    &mut out,
                    200,
                    "application/json",
                    json.as_bytes(),
                    keep_alive,
                )?;
                200
            }
            ("GET", _) | ("POST", _) => {
                respond(&mut out, 404, "text/plain", b"not found\n", keep_alive)?;
                404
            }
            _ => {
                respond(
                    &mut out,
                    405,
                    "text/plain",
                    b"method not allowed\n",
                    keep_alive,
                )?;
                405
            }
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{peer} {method} {path} {status}");
        let _ = stdout.flush();
        if !keep_alive {
            return Ok(());
        }
    }
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Payload Too Large",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()
}

/// `{"header": {...}, "body": "..."}`; a header sent twice keeps its last value.
fn echo_json(headers: &[(String, String)], body: &str) -> String {
    let mut fields = Vec::new();
    for (i, (k, v)) in headers.iter().enumerate() {
        let repeated_later = headers[i + 1..]
            .iter()
            .any(|(k2, _)| k2.eq_ignore_ascii_case(k));
        if !repeated_later {
            fields.push(format!("{}:{}", json_string(k), json_string(v)));
        }
    }
    format!(
        "{{\"header\":{{{}}},\"body\":{}}}",
        fields.join(","),
        json_string(body)
    )
}

fn json_string(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_and_shape() {
        let h = vec![
            ("Host".to_string(), "x".to_string()),
            ("X-A".to_string(), "1".to_string()),
            ("x-a".to_string(), "2".to_string()),
        ];
        assert_eq!(
            echo_json(&h, "a\"b\n"),
            r#"{"header":{"Host":"x","x-a":"2"},"body":"a\"b\n"}"#
        );
    }
}
