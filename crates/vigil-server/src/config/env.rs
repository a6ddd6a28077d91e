//! `${ENV}` expansion of the configuration text, before it is parsed.

use super::ConfigError;

/// Replaces `${NAME}` by the variable's value (`$${` is a literal `${`). An unset variable is
/// an error naming its line.
pub fn expand_env(
    text: &str,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<ConfigError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        // Comment lines are left alone.
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            if at > 0 && rest.as_bytes()[at - 1] == b'$' {
                out.push_str(&rest[..at - 1]);
                out.push_str("${");
                rest = &rest[at + 2..];
                continue;
            }
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let Some(end) = after.find('}') else {
                errors.push(ConfigError {
                    line: i + 1,
                    message: "unterminated ${...}".into(),
                });
                out.push_str(&rest[at..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            match get(name) {
                Some(v) if valid => {
                    if v.contains('\n') {
                        errors.push(ConfigError {
                            line: i + 1,
                            message: format!(
                                "environment variable {name} holds a line break; put such values in a file"
                            ),
                        });
                    }
                    out.push_str(&v);
                }
                _ if !valid => errors.push(ConfigError {
                    line: i + 1,
                    message: format!("invalid variable name {name:?} in ${{...}}"),
                }),
                _ => errors.push(ConfigError {
                    line: i + 1,
                    message: format!("environment variable {name} is not set"),
                }),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
