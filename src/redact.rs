//! Credentials never reach output: every message that may carry a connection string
//! passes through [`redact`].

use std::sync::OnceLock;

use regex::Regex;

/// Replace the password of every `scheme://user:password@` URI (a mistyped scheme must not
/// leak it either) with `****`, and `password=...` style options.
pub fn redact(text: &str) -> String {
    static URI: OnceLock<Regex> = OnceLock::new();
    static OPT: OnceLock<Regex> = OnceLock::new();
    let uri = URI.get_or_init(|| {
        Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@").expect("regex")
    });
    let opt =
        OPT.get_or_init(|| Regex::new(r"(?i)((?:password|pwd|secret)=)[^&\s]*").expect("regex"));
    let once = uri.replace_all(text, "${1}:****@");
    opt.replace_all(&once, "${1}****").into_owned()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("mongodb://app:s3cr%40t@db:27017/x"),
            "mongodb://app:****@db:27017/x"
        );
        assert_eq!(
            redact("mongodb+srv://u:p@c.example.net"),
            "mongodb+srv://u:****@c.example.net"
        );
        assert_eq!(
            redact("x?authMechanism=PLAIN&password=hunter2&y=1"),
            "x?authMechanism=PLAIN&password=****&y=1"
        );
        assert_eq!(
            redact("mongodb://127.0.0.1:27017"),
            "mongodb://127.0.0.1:27017"
        );
        assert_eq!(redact("mongodb://user@h"), "mongodb://user@h");
        assert_eq!(
            redact("http://user:pw-1@127.0.0.1:1/"),
            "http://user:****@127.0.0.1:1/"
        );
        assert_eq!(
            redact("invalid `mongodbx://u:p@h`"),
            "invalid `mongodbx://u:****@h`"
        );
    }
}
