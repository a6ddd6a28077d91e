//! A load generator for `vigil serve`'s audit webhook: reads audit events (JSON lines, e.g.
//! `vigil gen audit --events N`), posts them as EventLists of `--batch` events over mTLS from
//! `--concurrency` keep-alive connections (kube-apiserver sends each batch on its own
//! goroutine, so several POSTs are in flight), and reports events/s and the acknowledgement
//! latency (POST to 200) percentiles. Bounded in events and time; loopback only.
//!
//! ```text
//! cargo run --release -p vigil-server --example loadgen -- --url https://127.0.0.1:8443/audit \
//!     --ca ca.crt --cert client.crt --key client.key --events-file audit.jsonl \
//!     [--batch 400] [--concurrency 4] [--max-seconds 60] [--max-events N]
//! ```

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_server::client::Client;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let need = |n: &str| arg(&args, n).unwrap_or_else(|| panic!("{n} is required"));
    let url = need("--url");
    assert!(
        url.starts_with("https://127.") || url.starts_with("https://localhost"),
        "loopback only"
    );
    let ca = PathBuf::from(need("--ca"));
    let cert = PathBuf::from(need("--cert"));
    let key = PathBuf::from(need("--key"));
    let file = need("--events-file");
    let batch: usize = arg(&args, "--batch").map_or(400, |v| v.parse().unwrap());
    let conc: usize = arg(&args, "--concurrency").map_or(4, |v| v.parse().unwrap());
    let max_secs: f64 = arg(&args, "--max-seconds").map_or(60.0, |v| v.parse().unwrap());
    let max_events: usize = arg(&args, "--max-events").map_or(usize::MAX, |v| v.parse().unwrap());

    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(max_events)
        .collect();
    let bodies: VecDeque<(usize, Vec<u8>)> = lines
        .chunks(batch)
        .map(|c| {
            let mut b = String::from(
                r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#,
            );
            b.push_str(&c.join(","));
            b.push_str("]}");
            (c.len(), b.into_bytes())
        })
        .collect();
    let bytes: usize = bodies.iter().map(|b| b.1.len()).sum();
    let work = Arc::new(Mutex::new(bodies));
    let tls = vigil_server::tls::client_config(Some(&ca), Some((&cert, &key))).unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(max_secs);
    let start = Instant::now();
    let threads: Vec<_> = (0..conc)
        .map(|_| {
            let (work, tls, url) = (work.clone(), tls.clone(), url.clone());
            std::thread::spawn(move || {
                let mut c = Client::new(&url, Some(tls), Duration::from_secs(60)).unwrap();
                let (mut lat, mut events, mut retries) = (Vec::new(), 0usize, 0usize);
                loop {
                    if Instant::now() > deadline {
                        break;
                    }
                    let Some((n, body)) = work.lock().unwrap().pop_front() else {
                        break;
                    };
                    loop {
                        let t = Instant::now();
                        match c.request("POST", &[("Content-Type", "application/json")], &body) {
                            Ok(r) if r.status == 200 => {
                                lat.push(t.elapsed());
                                events += n;
                                break;
                            }
                            // 429/503: come back, as the apiserver would (sooner).
                            _ if Instant::now() < deadline => {
                                retries += 1;
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            _ => break,
                        }
                    }
                }
                (lat, events, retries)
            })
        })
        .collect();
    let (mut lat, mut events, mut retries) = (Vec::new(), 0, 0);
    for t in threads {
        let (l, e, r) = t.join().unwrap();
        lat.extend(l);
        events += e;
        retries += r;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{{\"events\":{events},\"batches\":{},\"seconds\":{secs:.2},\"events_per_s\":{:.0},\"mb_per_s\":{:.1},\"ack_ms_p50\":{:.1},\"ack_ms_p99\":{:.1},\"ack_ms_max\":{:.1},\"retries\":{retries},\"batch\":{batch},\"concurrency\":{conc}}}",
        lat.len(),
        events as f64 / secs,
        bytes as f64 * (events as f64 / lines.len().max(1) as f64) / secs / 1e6,
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
}
