//! A small blocking HTTP/1.1 client (keep-alive, TLS through rustls): the webhook sink uses it,
//! and so do the tests and the load generator (`examples/loadgen.rs`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ClientConnection, StreamOwned};

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

#[derive(Debug, Clone)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url}: expected http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse()
                    .map_err(|_| format!("{url}: invalid port {p:?}"))?,
            ),
            _ => (authority.to_string(), if https { 443 } else { 80 }),
        };
        Ok(Url {
            https,
            host,
            port,
            path,
        })
    }
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Client {
    url: Url,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
    conn: Option<BufReader<Box<dyn Stream>>>,
}

impl Client {
    pub fn new(
        url: &str,
        tls: Option<Arc<ClientConfig>>,
        timeout: Duration,
    ) -> Result<Client, String> {
        let url = Url::parse(url)?;
        if url.https && tls.is_none() {
            return Err("https:// needs a TLS configuration".into());
        }
        Ok(Client {
            url,
            tls,
            timeout,
            conn: None,
        })
    }

    fn connect(&self) -> Result<BufReader<Box<dyn Stream>>, String> {
        let addr = (self.url.host.as_str(), self.url.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.url.host))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.url.host))?;
        let tcp =
            TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| format!("{addr}: {e}"))?;
        tcp.set_read_timeout(Some(self.timeout)).ok();
        tcp.set_write_timeout(Some(self.timeout)).ok();
        tcp.set_nodelay(true).ok();
        let stream: Box<dyn Stream> = match (&self.tls, self.url.https) {
            (Some(cfg), true) => {
                let name =
                    ServerName::try_from(self.url.host.clone()).map_err(|e| e.to_string())?;
                let conn = ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
                Box::new(StreamOwned::new(conn, tcp))
            }
            _ => Box::new(tcp),
        };
        Ok(BufReader::new(stream))
    }

    /// One request; the connection is kept for the next one. A request on a kept connection
    /// that fails before any answer is retried once on a fresh connection.
    pub fn request(
        &mut self,
        method: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, String> {
        let reused = self.conn.is_some();
        match self.try_request(method, headers, body) {
            Err(_) if reused => {
                self.conn = None;
                self.try_request(method, headers, body)
            }
            r => r,
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, String> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let result = (|| {
            let conn = self.conn.as_mut().ok_or("no connection")?;
            let mut head = format!(
                "{method} {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: {}\r\n",
                self.url.path,
                self.url.host,
                self.url.port,
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let w = conn.get_mut();
            w.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
            w.write_all(body).map_err(|e| e.to_string())?;
            w.flush().map_err(|e| e.to_string())?;
            read_response(conn)
        })();
        match result {
            Ok((resp, keep)) => {
                if !keep {
                    self.conn = None;
                }
                Ok(resp)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

fn read_line(r: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    let n = r.read_line(&mut line).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed".into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_response(r: &mut impl BufRead) -> Result<(Response, bool), String> {
    let status_line = read_line(r)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let (mut len, mut chunked, mut keep) = (None, false, !status_line.starts_with("HTTP/1.0"));
    loop {
        let h = read_line(r)?;
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => len = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => keep = !v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size = read_line(r)?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "bad chunk size".to_string())?;
            if size == 0 {
                while !read_line(r)?.is_empty() {}
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])
                .map_err(|e| e.to_string())?;
            read_line(r)?;
        }
    } else if let Some(n) = len {
        body.resize(n, 0);
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else {
        r.read_to_end(&mut body).map_err(|e| e.to_string())?;
        keep = false;
    }
    Ok((Response { status, body }, keep))
}
