//! "Did you mean …?" hints for misspelt keys and values.

/// The candidate closest to `word`, if it is close enough to be a plausible typo (the
/// shared rule, [`skyplan_api::suggest::nearest`]).
pub(super) fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    skyplan_api::suggest::nearest(word, candidates)
}

/// Help text for an unknown word: the closest candidate, or the whole list if none is close.
pub(super) fn help_for(word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None => format!("expected one of {}", list(candidates)),
    }
}

/// `a`, `b`, `c`
pub(super) fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let keys = ["name", "region", "replication", "ssl_enabled"];
        assert_eq!(did_you_mean("regoin", keys), Some("region"));
        assert_eq!(did_you_mean("Region", keys), Some("region"));
        assert_eq!(did_you_mean("nmae", keys), Some("name"));
        assert_eq!(did_you_mean("replicaton", keys), Some("replication"));
        assert_eq!(did_you_mean("colour", keys), None);
        assert_eq!(did_you_mean("x", keys), None);
    }

    #[test]
    fn help_lists_everything_when_nothing_is_close() {
        assert_eq!(help_for("gpc", &["aws", "gcp"]), "did you mean `gcp`?");
        assert_eq!(
            help_for("oracle", &["aws", "gcp"]),
            "expected one of `aws`, `gcp`"
        );
    }
}
