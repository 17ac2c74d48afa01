//! Ownership, proven rather than guessed: every service skyplan creates or adopts carries two
//! tags naming its workspace (the state's lineage) and its topology key. A same-named service
//! tagged by another workspace is never adopted; the tags tell the user which state owns it.
//! The user's own tags are kept beside them.

use std::collections::BTreeMap;

/// Tag holding the lineage of the state that manages the service.
pub const WORKSPACE_TAG: &str = "skyplan-workspace";
/// Tag holding the service's key in that workspace's topology.
pub const KEY_TAG: &str = "skyplan-key";

/// Who manages a service, read from its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub lineage: String,
    pub key: String,
}

/// The tags to set on a service: the user's, plus the ownership tags (which win).
pub fn tags(user: &BTreeMap<String, String>, lineage: &str, key: &str) -> BTreeMap<String, String> {
    let mut t = user.clone();
    t.insert(WORKSPACE_TAG.into(), lineage.into());
    t.insert(KEY_TAG.into(), key.into());
    t
}

/// The tags that make an existing service ours: its own, the topology's, and the ownership
/// tags (PATCH replaces every tag, so nothing of theirs may be left out).
pub fn claim(
    existing: &BTreeMap<String, String>,
    user: &BTreeMap<String, String>,
    lineage: &str,
    key: &str,
) -> BTreeMap<String, String> {
    let mut t = existing.clone();
    t.extend(user.clone());
    tags(&t, lineage, key)
}

/// The owner a service's tags name, if any.
pub fn owner(tags: &BTreeMap<String, String>) -> Option<Owner> {
    Some(Owner {
        lineage: tags.get(WORKSPACE_TAG)?.clone(),
        key: tags.get(KEY_TAG).cloned().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_tags_sit_beside_the_users_and_read_back() {
        let user = BTreeMap::from([("team".to_string(), "db".to_string())]);
        let t = tags(&user, "lin-1", "primary");
        assert_eq!(t["team"], "db");
        assert_eq!(
            owner(&t),
            Some(Owner {
                lineage: "lin-1".into(),
                key: "primary".into()
            })
        );
        assert_eq!(owner(&user), None);
    }
}
