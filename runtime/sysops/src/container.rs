//! Small facts about a container that every crate must agree on: what a container id may
//! look like, what a hostname may look like, the default PATH, and how an environment list
//! (`KEY=value` strings, environ(7)) is updated.

/// The PATH a container gets when its spec and image say nothing (Docker's and runc's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Whether `id` is a valid container id: letters, digits and `_ - . +` (runc's set), at
/// most 1024 bytes, not `.` or `..`, and not starting with `-` (an id such as `-rf` would read
/// as an option to every tool that is later given it). Ids become file names under the state
/// and data roots, so this is also what keeps them inside those roots.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && !id.starts_with('-')
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.+".contains(c))
}

/// Whether `h` is a hostname as RFC 1123 allows it: labels of letters, digits and `-` (not
/// at either end), at most 63 characters each, 64 in all (the kernel's limit).
pub fn valid_hostname(h: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    h.len() <= 64 && h.split('.').all(label_ok)
}

/// Sets `KEY=value` in an environment list, replacing any earlier value of KEY.
pub fn env_set(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or(kv);
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(kv.to_string());
}

/// The value of KEY in an environment list (the last one wins, as for execve).
pub fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["a", "abc-1_2.3", "A+b", "0123456789abcdef"] {
            assert!(valid_id(good), "{good}");
        }
        for bad in [
            "", ".", "..", "a/b", "../x", "a b", "a\0b", "-", "-rf", "a\nb",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(valid_hostname("web-1.example"));
        for bad in ["a/b", "-a", "a-", "", "a..b", &"x".repeat(65)] {
            assert!(!valid_hostname(bad), "{bad:?}");
        }
    }

    #[test]
    fn env_lists() {
        let mut env = vec!["A=1".to_string(), "PATH=/a".into()];
        env_set(&mut env, "A=3");
        assert_eq!(env, ["PATH=/a", "A=3"]);
        assert_eq!(env_get(&env, "A"), Some("3"));
        assert_eq!(env_get(&env, "PAT"), None);
    }
}
