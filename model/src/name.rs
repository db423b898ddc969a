//! The names an operator gives things (instances, nodes, services). They end up in file names,
//! metrics labels, log lines and next to SQL; a small alphabet keeps them harmless everywhere.

/// A name that may not be used for an instance, a node or a service.
#[derive(Debug, thiserror::Error)]
#[error("invalid {kind} name '{value}': use 1 to 64 letters, digits, '_', '.' or '-'")]
pub struct InvalidName {
    pub kind: &'static str,
    pub value: String,
}

/// `[A-Za-z0-9_.-]{1,64}`.
pub fn validate_name(kind: &'static str, value: &str) -> Result<(), InvalidName> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName {
            kind,
            value: value.to_owned(),
        })
    }
}
