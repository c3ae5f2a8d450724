//! Which of several resources binding the same thing wins: Istio's order, so that what strait
//! reports is what Istio would do with the same manifests.

use super::resources::{ObjectMeta, Timestamp};

/// Sorts first-wins. Istio orders by `creationTimestamp`, then name, then namespace. A missing
/// timestamp is Go's zero time there, older than any; manifests in files usually have none, and
/// then strait keeps the order the user wrote: the first in load order wins.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precedence {
    Undated {
        load_order: usize,
    },
    Dated {
        created: Timestamp,
        name: String,
        namespace: String,
    },
}

impl Precedence {
    /// `load_order`: the resource's position among its kind in load order.
    pub fn of(meta: &ObjectMeta, load_order: usize) -> Self {
        match meta.creation_timestamp {
            None => Self::Undated { load_order },
            Some(created) => Self::Dated {
                created,
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
            },
        }
    }

    /// Why `self` comes before `later`, for messages.
    pub fn why_before(&self, later: &Self) -> &'static str {
        match (self, later) {
            (Self::Undated { .. }, Self::Undated { .. }) => {
                "neither has a creationTimestamp and it comes first in load order"
            }
            (Self::Undated { .. }, Self::Dated { .. }) => {
                "it has no creationTimestamp, which counts as oldest"
            }
            (Self::Dated { created: a, .. }, Self::Dated { created: b, .. }) if a == b => {
                "both have the same creationTimestamp and its name sorts first"
            }
            _ => "it is older (creationTimestamp)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, created: Option<&str>) -> ObjectMeta {
        let yaml = match created {
            Some(time) => format!("{{name: {name}, creationTimestamp: '{time}'}}"),
            None => format!("{{name: {name}}}"),
        };
        serde_yaml::from_str(&yaml).unwrap()
    }

    #[test]
    fn istio_order() {
        let undated_second = Precedence::of(&meta("a", None), 1);
        let undated_first = Precedence::of(&meta("z", None), 0);
        let old = Precedence::of(&meta("z", Some("2024-01-01T00:00:00Z")), 2);
        let new = Precedence::of(&meta("a", Some("2024-06-01T00:00:00Z")), 3);
        let new_b = Precedence::of(&meta("b", Some("2024-06-01T00:00:00Z")), 4);
        let mut all = vec![
            new_b.clone(),
            new.clone(),
            old.clone(),
            undated_second.clone(),
            undated_first.clone(),
        ];
        all.sort();
        assert_eq!(
            all,
            [
                undated_first.clone(),
                undated_second.clone(),
                old.clone(),
                new.clone(),
                new_b.clone()
            ]
        );
        assert!(undated_first
            .why_before(&undated_second)
            .contains("load order"));
        assert!(old.why_before(&new).contains("older"));
        assert!(new.why_before(&new_b).contains("name"));
        assert!(undated_first.why_before(&old).contains("oldest"));
    }
}
