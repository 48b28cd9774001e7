//! Runs the proxy of `ingestor_s3kit::proxy` until killed.
//!
//!   fault-proxy --upstream PORT [--latency-ms MS] [--port PORT]
//!
//! Prints `listening on 127.0.0.1:PORT` once it accepts connections. `GET /_proxy/counts`
//! answers the requests seen by kind as JSON, `POST /_proxy/reset` sets them to zero.

use std::time::Duration;

use ingestor_s3kit::{FaultProxy, Options};

fn usage() -> ! {
    eprintln!("usage: fault-proxy --upstream PORT [--latency-ms MS] [--port PORT]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut upstream = None;
    let mut latency = 0;
    let mut port = 0;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value: u64 = match args.next().map(|v| v.parse()) {
            Some(Ok(value)) => value,
            _ => usage(),
        };
        match flag.as_str() {
            "--upstream" => upstream = Some(value as u16),
            "--latency-ms" => latency = value,
            "--port" => port = value as u16,
            _ => usage(),
        }
    }
    let Some(upstream) = upstream else { usage() };
    let options = Options {
        latency: Duration::from_millis(latency),
        port,
        ..Options::new(upstream)
    };
    let proxy = match FaultProxy::launch(options).await {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("fault-proxy: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        }
    };
    println!("listening on 127.0.0.1:{}", proxy.port);
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("{}", proxy.counts.to_json());
}
