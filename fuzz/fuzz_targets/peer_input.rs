//! What peers send that the control plane parses: a certificate's DER (from any client that
//! completes a TLS handshake), text that may carry a server's excerpt, addresses, and ids that
//! become file names. None may
//! panic; an accepted certificate names an identity and a role; withholding is idempotent and
//! leaves no excerpt's text behind.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qserv_proto::excerpt::{OPEN, WITHHELD, quote, withhold};

fuzz_target!(|data: &[u8]| {
    if let Ok(facts) = qserv_proto::certs::facts(data) {
        assert!(!facts.identity.is_empty());
        assert_eq!(
            qserv_proto::certs::CertRole::parse(facts.role.name()),
            Some(facts.role)
        );
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let shown = withhold(text).into_owned();
    assert_eq!(withhold(&shown), shown.as_str());
    assert_eq!(shown.matches(OPEN).count(), shown.matches(WITHHELD).count());
    let quoted = format!("a {} b", quote(text));
    assert_eq!(withhold(&quoted), format!("a {WITHHELD} b").as_str());
    if let Some(userinfo) = qserv_proto::names::url_userinfo(text) {
        assert!(text.contains(&format!("{userinfo}@")));
    }
    // Job and worker ids name saved files on the repl node: one plain name, never a path.
    let part = qserv_proto::names::file_part(text);
    assert!(!part.is_empty() && !part.starts_with('.') && !part.contains('/'));
});
