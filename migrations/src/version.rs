//! smig's reading of a module database's schema version.

/// `None` is an uninitialized database (smig's `None`); `Some(v)` a database at version `v`.
pub type SchemaVersion = Option<i64>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("QMetadata holds version '{0}', which is not an integer; fix the row by hand")]
pub struct VersionError(pub String);

/// Applies smig's rules to what was found in the database:
/// database missing → uninitialized; no `QMetadata` table → 0; no `version` row → uninitialized;
/// otherwise the integer in the row.
pub fn version_from_probe(
    database_exists: bool,
    has_qmetadata: bool,
    version_row: Option<&str>,
) -> Result<SchemaVersion, VersionError> {
    if !database_exists {
        return Ok(None);
    }
    if !has_qmetadata {
        return Ok(Some(0));
    }
    match version_row {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| VersionError(raw.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_smig_semantics() {
        assert_eq!(version_from_probe(false, false, None), Ok(None));
        assert_eq!(version_from_probe(true, false, None), Ok(Some(0)));
        assert_eq!(version_from_probe(true, true, None), Ok(None));
        assert_eq!(version_from_probe(true, true, Some("12")), Ok(Some(12)));
        assert_eq!(
            version_from_probe(true, true, Some("twelve")),
            Err(VersionError("twelve".to_owned()))
        );
    }
}
