//! What the policy stores share: the effective change of an `apply`, and, for the SQL
//! stores, a policy line's columns and the change log's JSON.
//!
//! Every backend computes the change an `apply` makes with [`plan`], so they agree on
//! the port's rules (remove, then add; a line given twice counts once; only lines that
//! change are recorded) by construction; the conformance suite checks they also agree
//! in fact.

use std::collections::HashSet;

use portal_core::access::PolicyLine;

/// The lines an `apply` really changes, in the order the caller gave them.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Lines to insert: given in `added` and absent now.
    pub(crate) added: Vec<PolicyLine>,
    /// Lines to delete: given in `removed`, present now, and not given in `added`.
    pub(crate) removed: Vec<PolicyLine>,
}

impl Plan {
    /// Whether the apply changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Every distinct line of `added` and `removed`: the lines whose presence an apply must
/// know before it can [`plan`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn candidates<'l>(added: &'l [PolicyLine], removed: &'l [PolicyLine]) -> Vec<&'l PolicyLine> {
    let mut seen = HashSet::new();
    added.iter().chain(removed).filter(|line| seen.insert(*line)).collect()
}

/// The effective change of removing `removed` and then adding `added`, given which lines
/// `exists` now. A line in both lists ends up present: it is added if it was absent and
/// left alone if it was there.
pub(crate) fn plan(added: &[PolicyLine], removed: &[PolicyLine], exists: impl Fn(&PolicyLine) -> bool) -> Plan {
    let wanted: HashSet<&PolicyLine> = added.iter().collect();
    let mut seen = HashSet::new();
    let removed = removed
        .iter()
        .filter(|line| seen.insert(*line) && exists(line) && !wanted.contains(line))
        .cloned()
        .collect();
    let mut seen = HashSet::new();
    let added = added
        .iter()
        .filter(|line| seen.insert(*line) && !exists(line))
        .cloned()
        .collect();
    Plan { added, removed }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use sql::{LineColumns, line_from_columns, lines_from_json, lines_json, revision_from, revision_value};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql {
    use portal_core::access::{Domain, Effect, PolicyLine, PolicyRule, Revision};
    use portal_core::store::StoreError;

    use crate::sql::Backend;

    /// A revision as the SQL stores keep it (a signed 64-bit integer). Revisions beyond
    /// what a store can hold clamp to the largest, which no store reaches.
    pub(crate) fn revision_value(revision: Revision) -> i64 {
        i64::try_from(revision.0).unwrap_or(i64::MAX)
    }

    /// A revision read back from a SQL store; a negative value is corrupt.
    pub(crate) fn revision_from(backend: Backend, value: i64) -> Result<Revision, StoreError> {
        u64::try_from(value)
            .map(Revision)
            .map_err(|_| backend.corrupt(format!("revision `{value}`")))
    }

    /// A policy line as the six columns of `policy_lines`.
    ///
    /// A `p` line keeps its rule's fields in the columns of the same names and its effect
    /// as `allow` or `deny`; a `g` line keeps the inheriting role in `subject`, the parent
    /// in `object`, and empty strings in `action` and `effect`. The domain is its string
    /// form: `platform`, `*`, or the org's id.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct LineColumns {
        pub(crate) ptype: &'static str,
        pub(crate) subject: String,
        pub(crate) domain: String,
        pub(crate) object: String,
        pub(crate) action: String,
        pub(crate) effect: &'static str,
    }

    impl LineColumns {
        /// The columns of `line`.
        pub(crate) fn of(line: &PolicyLine) -> Self {
            match line {
                PolicyLine::Permission(rule) => Self {
                    ptype: "p",
                    subject: rule.subject.to_string(),
                    domain: rule.domain.to_string(),
                    object: rule.object.to_string(),
                    action: rule.action.to_string(),
                    effect: match rule.effect {
                        Effect::Allow => "allow",
                        Effect::Deny => "deny",
                    },
                },
                PolicyLine::Inherit { role, parent, domain } => Self {
                    ptype: "g",
                    subject: role.clone(),
                    domain: domain.to_string(),
                    object: parent.clone(),
                    action: String::new(),
                    effect: "",
                },
            }
        }
    }

    /// Reads a line back from its columns (see [`LineColumns`]); anything else is
    /// [`StoreError::Corrupt`].
    pub(crate) fn line_from_columns(
        backend: Backend,
        ptype: &str,
        subject: String,
        domain: &str,
        object: String,
        action: String,
        effect: &str,
    ) -> Result<PolicyLine, StoreError> {
        let domain: Domain = backend.decode(|| format!("domain of policy line `{subject}`"), domain.parse())?;
        match (ptype, effect) {
            ("p", "allow" | "deny") => Ok(PolicyLine::Permission(PolicyRule {
                subject: subject.into(),
                domain,
                object: object.into(),
                action: action.into(),
                effect: if effect == "allow" { Effect::Allow } else { Effect::Deny },
            })),
            ("g", "") if action.is_empty() => Ok(PolicyLine::Inherit {
                role: subject,
                parent: object,
                domain,
            }),
            _ => Err(backend.corrupt(format!("type or effect of policy line `{subject}` in {domain}"))),
        }
    }

    /// The JSON text a change's list of lines is logged as.
    pub(crate) fn lines_json(backend: Backend, lines: &[PolicyLine]) -> Result<String, StoreError> {
        serde_json::to_string(lines).map_err(|err| StoreError::Backend {
            backend: backend.name(),
            source: Box::new(err),
        })
    }

    /// Reads a logged list of lines back; text that is not one is [`StoreError::Corrupt`].
    pub(crate) fn lines_from_json(
        backend: Backend,
        json: &str,
        what: &str,
        revision: Revision,
    ) -> Result<Vec<PolicyLine>, StoreError> {
        backend.decode(
            || format!("{what} lines of policy change {}", revision.0),
            serde_json::from_str(json),
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn round_trip(line: PolicyLine) {
            let c = LineColumns::of(&line);
            let back = line_from_columns(
                Backend::Sqlite,
                c.ptype,
                c.subject,
                &c.domain,
                c.object,
                c.action,
                c.effect,
            )
            .unwrap();
            assert_eq!(back, line);
        }

        #[test]
        fn lines_round_trip_through_their_columns() {
            for effect in [Effect::Allow, Effect::Deny] {
                round_trip(PolicyLine::Permission(PolicyRule {
                    subject: "admin".into(),
                    domain: Domain::Platform,
                    object: "cases/*".into(),
                    action: "".into(),
                    effect,
                }));
            }
            round_trip(PolicyLine::Inherit {
                role: "lead".into(),
                parent: "member".into(),
                domain: Domain::AllOrgs,
            });
        }

        #[test]
        fn malformed_columns_are_corrupt() {
            for (ptype, domain, action, effect) in [
                ("p", "platform", "read", "maybe"),
                ("g", "platform", "read", ""),
                ("g", "platform", "", "allow"),
                ("x", "platform", "", ""),
                ("p", "nowhere", "read", "allow"),
            ] {
                let got = line_from_columns(
                    Backend::Postgres,
                    ptype,
                    "s".into(),
                    domain,
                    "o".into(),
                    action.into(),
                    effect,
                );
                assert!(
                    matches!(
                        got,
                        Err(StoreError::Corrupt {
                            backend: "postgres",
                            ..
                        })
                    ),
                    "{ptype} {domain} {action} {effect}: {got:?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use portal_core::access::{Domain, Effect, PolicyRule};

    use super::*;

    fn p(subject: &str) -> PolicyLine {
        PolicyLine::Permission(PolicyRule {
            subject: subject.into(),
            domain: Domain::Platform,
            object: "cases".into(),
            action: "read".into(),
            effect: Effect::Allow,
        })
    }

    #[test]
    fn plan_removes_then_adds_and_keeps_only_effective_lines() {
        let present: HashSet<PolicyLine> = [p("a"), p("b"), p("c")].into_iter().collect();
        let plan = plan(
            &[p("a"), p("d"), p("d"), p("e"), p("c")],
            &[p("b"), p("x"), p("b"), p("c"), p("e")],
            |line| present.contains(line),
        );
        // `a` exists; `d` is new (once); `e` is removed while absent, then added; `c` is
        // in both lists and present, so it stays and is not recorded.
        assert_eq!(plan.added, vec![p("d"), p("e")]);
        // `b` is present (once); `x` is absent.
        assert_eq!(plan.removed, vec![p("b")]);
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn candidates_are_distinct() {
        let (added, removed) = ([p("a"), p("b"), p("a")], [p("b"), p("c")]);
        let got = candidates(&added, &removed);
        assert_eq!(got, vec![&p("a"), &p("b"), &p("c")]);
    }
}
