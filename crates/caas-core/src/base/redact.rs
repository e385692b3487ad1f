//! Credentials never reach output: every message that may carry a connection string
//! passes through [`redact`].

use std::sync::{Mutex, OnceLock};

use regex::Regex;

/// Secrets taken from the connection string in use: replaced wherever they appear, whatever
/// the message's shape (a password with a raw space or `@` defeats any pattern).
fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remember the credentials of a connection string (its password, every
/// `authMechanismProperties` value, `tlsCertificateKeyFilePassword`, `proxyPassword`), raw
/// and percent-decoded, so [`redact`] hides them anywhere.
pub fn register_uri(uri: &str) {
    let mut found = Vec::new();
    if let Some((_, rest)) = uri.split_once("://") {
        // The userinfo ends at the last `@` before the host list (a raw `@` may sit in
        // the password); the host list has no `@`.
        let authority_end = rest.rfind('@');
        if let Some(at) = authority_end {
            let userinfo = &rest[..at];
            if let Some((_, password)) = userinfo.split_once(':') {
                found.push(password.to_owned());
            }
        }
    }
    if let Some((_, query)) = uri.split_once('?') {
        for pair in query.split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            match key.to_ascii_lowercase().as_str() {
                "authmechanismproperties" => {
                    for prop in value.split(',') {
                        if let Some((_, v)) = prop.split_once(':') {
                            found.push(v.to_owned());
                        }
                    }
                }
                "tlscertificatekeyfilepassword" | "proxypassword" | "password" => {
                    found.push(value.to_owned())
                }
                _ => {}
            }
        }
    }
    let mut all = secrets().lock().unwrap_or_else(|e| e.into_inner());
    for f in found.into_iter().filter(|f| f.len() >= 3) {
        let decoded = percent_decode(&f);
        for v in [f, decoded] {
            if !all.contains(&v) {
                all.push(v);
            }
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Hide credentials: the registered secrets of the connection string in use, the userinfo
/// password of every `scheme://user:password@` URI (up to its last `@`, so a raw `@` in the
/// password does not leak its tail; a mistyped scheme must not leak it either), and
/// `password=`, `pwd=`, `secret=`, `proxyPassword=`, `tlsCertificateKeyFilePassword=` and
/// `authMechanismProperties=` option values.
pub fn redact(text: &str) -> String {
    static URI: OnceLock<Regex> = OnceLock::new();
    static OPT: OnceLock<Regex> = OnceLock::new();
    let mut text = text.to_owned();
    for secret in secrets().lock().unwrap_or_else(|e| e.into_inner()).iter() {
        text = text.replace(secret.as_str(), "****");
    }
    let uri = URI.get_or_init(|| {
        Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^\s]*@").expect("regex")
    });
    let opt = OPT.get_or_init(|| {
        Regex::new(r"(?i)((?:password|pwd|secret|proxypassword|tlscertificatekeyfilepassword|authmechanismproperties)=)[^&\s`'\x22]*")
            .expect("regex")
    });
    let once = uri.replace_all(&text, "${1}:****@");
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

    /// URI shapes the driver accepts, each through the messages caas prints about a URI.
    #[test]
    fn every_credential_form_is_hidden() {
        let cases: &[(&str, &[&str])] = &[
            ("mongodb://u:simple-pw1@h/", &["simple-pw1"]),
            ("mongodb://u:RAW@AT-pw2@h/", &["RAW", "AT-pw2"]),
            ("mongodb://u:with space pw3@h/", &["with space pw3", "space pw3"]),
            ("mongodb://u:col:on:pw4@h/", &["on:pw4"]),
            ("mongodb://u:pct%40pw5@h/", &["pct%40pw5", "pct@pw5"]),
            ("mongodb+srv://u:srv-pw6@cluster.example.net/", &["srv-pw6"]),
            ("mongodb://u:multi-pw7@h1:1,h2:2/?replicaSet=rs", &["multi-pw7"]),
            ("mongodb://u:pw8x@h/db?authSource=admin", &["pw8x"]),
            ("mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok-pw9", &["tok-pw9"]),
            ("mongodb://h/?authMechanismProperties=SERVICE_NAME:svc,AWS_SESSION_TOKEN:tok-pw10", &["tok-pw10"]),
            ("mongodb://h/?tlsCertificateKeyFilePassword=keyfile-pw11", &["keyfile-pw11"]),
            ("mongodb://h/?proxyHost=p&proxyPassword=proxy-pw12", &["proxy-pw12"]),
            ("mongodb://u:pw13-tail@h/?proxyPassword=proxy-pw13", &["pw13-tail", "proxy-pw13"]),
            ("mongodbx://u:typo-pw14@h/", &["typo-pw14"]),
            ("http://u:http-pw15@h/", &["http-pw15"]),
            ("mongodb://u:pw16-:@h:notaport/", &["pw16-"]),
            ("mongodb://u:pw17!$&'()*+,;=@h/", &["pw17!$&'()*+,;="]),
            ("mongodb://u:ünï-pw18@h/", &["ünï-pw18"]),
            ("mongodb://u:pw19%2Fslash@h/", &["pw19%2Fslash", "pw19/slash"]),
            ("mongodb://u:pw20@h/?password=opt-pw20", &["opt-pw20"]),
            ("mongodb://user%40corp:pw21@h/", &["pw21"]),
            ("mongodb://u:pw22@[::1]:27017/", &["pw22"]),
            ("mongodb://u:%ü-pw23@h/", &["%ü-pw23"]),
        ];
        for (uri, secrets) in cases {
            super::register_uri(uri);
            for message in [
                format!("cannot reach MongoDB at {uri}: Connection refused"),
                format!("invalid connection string `{uri}`: bad port"),
                format!("caas.toml:3:7: uri = \"{uri}\""),
                format!("{{\"error\": \"{uri}\"}}"),
            ] {
                let shown = redact(&message);
                for s in *secrets {
                    assert!(!shown.contains(s), "{uri}: `{s}` shown in {shown}");
                }
            }
        }
    }
}
