//! Rendering the report's blocks: Markdown and self-contained HTML, escaping every text.

use std::fmt::Write as _;

use super::Block;

/// Markdown text: punctuation that Markdown (or HTML inside it) would interpret is escaped.
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(n, t) => {
                let _ = writeln!(out, "\n{} {}", "#".repeat(*n as usize), md_escape(t));
            }
            Block::Para(t) => {
                let _ = writeln!(out, "\n{}", md_escape(t));
            }
            Block::List(items) => {
                out.push('\n');
                for i in items {
                    let _ = writeln!(out, "- {}", md_escape(i));
                }
            }
            Block::Table(head, rows) => {
                out.push('\n');
                let _ = writeln!(
                    out,
                    "| {} |",
                    head.iter()
                        .map(|h| md_escape(h))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
                let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
                for r in rows {
                    let _ = writeln!(
                        out,
                        "| {} |",
                        r.iter()
                            .map(|c| md_escape(c))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    );
                }
            }
        }
    }
    out.trim_start().to_string()
}

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;\
padding:0 1em;color:#222}table{border-collapse:collapse;font-size:90%}\
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}\
th{background:#eee}h2{border-bottom:1px solid #ccc}";

pub fn html(blocks: &[Block]) -> String {
    let title = blocks
        .iter()
        .find_map(|b| match b {
            Block::Heading(1, t) => Some(t.as_str()),
            _ => None,
        })
        .unwrap_or("Incident report");
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        html_escape(title)
    );
    for b in blocks {
        match b {
            Block::Heading(n, t) => {
                let _ = writeln!(out, "<h{n}>{}</h{n}>", html_escape(t));
            }
            Block::Para(t) => {
                let _ = writeln!(out, "<p>{}</p>", html_escape(t));
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for i in items {
                    let _ = writeln!(out, "<li>{}</li>", html_escape(i));
                }
                out.push_str("</ul>\n");
            }
            Block::Table(head, rows) => {
                out.push_str("<table>\n");
                if head.iter().any(|h| !h.is_empty()) {
                    out.push_str("<tr>");
                    for h in head {
                        let _ = write!(out, "<th>{}</th>", html_escape(h));
                    }
                    out.push_str("</tr>\n");
                }
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        let _ = write!(out, "<td>{}</td>", html_escape(c));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}
