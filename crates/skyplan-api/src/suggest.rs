//! "Did you mean …?": the one rule for which valid value a misspelt one most likely meant,
//! shared by the topology's validation, the catalog check and the emulator's refusals.

/// The candidate closest to `word` (Damerau–Levenshtein, case ignored), if it is close enough
/// to be a plausible typo or another spelling (`us-west-1` → `us-west1`): at most a third of
/// the longer length, and at least one edit. Ties go to the first candidate.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_lc = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word_lc, &c.to_lowercase()), c))
        // A third of the length tolerates transpositions and one or two wrong letters
        // without offering unrelated words for short inputs.
        .filter(|(d, c)| *d <= (c.chars().count().max(word.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_other_spellings_find_the_value_unrelated_words_do_not() {
        assert_eq!(nearest("gpc", ["aws", "gcp"]), Some("gcp"));
        assert_eq!(
            nearest("us-west-1", ["us-west1", "us-east4"]),
            Some("us-west1")
        );
        assert_eq!(nearest("REGION", ["region", "size"]), Some("region"));
        assert_eq!(nearest("mars-north1", ["us-west1", "us-east4"]), None);
        assert_eq!(nearest("x", ["aws"]), None);
    }
}
