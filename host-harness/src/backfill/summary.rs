//! The end-of-run report: counts per object kind, and skips and failures grouped by reason.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::ObjectKind;
use crate::report::table;

/// Examples kept per reason group.
const EXAMPLES: usize = 3;

/// Records by how they ended. "synced" covers created and updated alike: HubSpot's upsert
/// answer says which, but the sync does not surface it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub synced: usize,
    /// Same content as a previous backfill already synced or saw skipped: nothing sent.
    pub unchanged: usize,
    /// The guest's rules say not to push it (drafts, pending subscriptions, partners, …).
    pub skipped: usize,
    pub failed: usize,
}

impl Counts {
    pub fn records(&self) -> usize {
        self.synced + self.unchanged + self.skipped + self.failed
    }

    fn add(&mut self, other: &Counts) {
        self.synced += other.synced;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }
}

/// Records of one kind that were skipped or failed for the same reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonGroup {
    pub kind: ObjectKind,
    /// The reason with the record's own ids replaced by `…`, so like records group together.
    pub reason: String,
    pub count: usize,
    /// A few Lago ids (or `line N` for a file) to look up in the sync log.
    pub examples: Vec<String>,
}

/// How a record ended, as the summary counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    Synced,
    Unchanged,
    Skipped(String),
    Failed(String),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub connection: String,
    pub counts: BTreeMap<ObjectKind, Counts>,
    pub skipped: Vec<ReasonGroup>,
    pub failed: Vec<ReasonGroup>,
    /// Events in a `--from` file replaced by a later event for the same object.
    pub superseded: usize,
    /// The deploy that ran first, when the connection was not deployed yet.
    pub deployed: Option<String>,
    /// Why the run stopped before the end (e.g. Lago became unreachable).
    pub interrupted: Option<String>,
}

impl Summary {
    pub fn counts(&self, kind: ObjectKind) -> Counts {
        self.counts.get(&kind).copied().unwrap_or_default()
    }

    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for counts in self.counts.values() {
            total.add(counts);
        }
        total
    }

    /// True when every record was synced, unchanged or skipped, and the run reached the end.
    pub fn is_success(&self) -> bool {
        self.total().failed == 0 && self.interrupted.is_none()
    }

    pub(crate) fn add(
        &mut self,
        kind: ObjectKind,
        ending: Ending,
        example: &str,
        identifiers: &[String],
    ) {
        let counts = self.counts.entry(kind).or_default();
        let (groups, reason) = match ending {
            Ending::Synced => return counts.synced += 1,
            Ending::Unchanged => return counts.unchanged += 1,
            Ending::Skipped(reason) => {
                counts.skipped += 1;
                (&mut self.skipped, reason)
            }
            Ending::Failed(reason) => {
                counts.failed += 1;
                (&mut self.failed, reason)
            }
        };
        let reason = generalize(&reason, identifiers);
        match groups
            .iter_mut()
            .find(|g| g.kind == kind && g.reason == reason)
        {
            Some(group) => {
                group.count += 1;
                if group.examples.len() < EXAMPLES {
                    group.examples.push(example.to_owned());
                }
            }
            None => groups.push(ReasonGroup {
                kind,
                reason,
                count: 1,
                examples: vec![example.to_owned()],
            }),
        }
    }
}

/// The reason without what is particular to one record: its ids and names, and HubSpot's
/// per-request correlation id.
pub(crate) fn generalize(reason: &str, identifiers: &[String]) -> String {
    let mut text = reason.to_owned();
    while let Some(start) = text.find(" (correlation id ") {
        let end = text[start..]
            .find(')')
            .map_or(text.len(), |offset| start + offset + 1);
        text.replace_range(start..end, "");
    }
    let mut identifiers: Vec<&String> = identifiers
        .iter()
        .filter(|id| id.chars().count() >= 3)
        .collect();
    // Longest first, so an id that contains another is replaced whole.
    identifiers.sort_by_key(|id| std::cmp::Reverse(id.len()));
    for id in identifiers {
        text = text.replace(id.as_str(), "…");
    }
    text
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        writeln!(
            f,
            "Backfill of connection {}: {} records: {} synced, {} unchanged, {} skipped, {} failed",
            self.connection,
            total.records(),
            total.synced,
            total.unchanged,
            total.skipped,
            total.failed
        )?;
        if let Some(deployed) = &self.deployed {
            writeln!(f, "Deployed first: {deployed}")?;
        }
        let row = |name: &str, c: &Counts| {
            vec![
                name.to_owned(),
                c.synced.to_string(),
                c.unchanged.to_string(),
                c.skipped.to_string(),
                c.failed.to_string(),
            ]
        };
        let mut rows: Vec<Vec<String>> = self
            .counts
            .iter()
            .map(|(kind, counts)| row(kind.plural(), counts))
            .collect();
        rows.push(row("total", &total));
        writeln!(f)?;
        write!(
            f,
            "{}",
            table(&["", "synced", "unchanged", "skipped", "failed"], &rows)
        )?;
        for (title, groups) in [
            ("Skipped by the sync rules", &self.skipped),
            ("Failed", &self.failed),
        ] {
            if groups.is_empty() {
                continue;
            }
            writeln!(f, "\n{title}, by reason:")?;
            for group in groups {
                writeln!(
                    f,
                    "  {:>5}  {}: {}  (e.g. {})",
                    group.count,
                    group.kind.plural(),
                    group.reason,
                    group.examples.join(", ")
                )?;
            }
        }
        if self.superseded > 0 {
            writeln!(
                f,
                "\n{} event(s) in the file were superseded by a later event for the same object.",
                self.superseded
            )?;
        }
        if total.failed > 0 {
            writeln!(
                f,
                "\nFailed records are retried by the next run; `sync_log` in the state database has each one's details."
            )?;
        }
        if let Some(reason) = &self.interrupted {
            writeln!(
                f,
                "\nInterrupted: {reason}\nRun the same command again to continue: what is done is not sent again."
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_group_without_ids_and_correlation_ids() {
        let mut summary = Summary {
            connection: "hs".into(),
            ..Summary::default()
        };
        for (id, number) in [
            ("inv_1", "ACME-001"),
            ("inv_2", "ACME-002"),
            ("inv_3", "ACME-003"),
        ] {
            summary.add(
                ObjectKind::Invoices,
                Ending::Skipped(format!(
                    "invoice {number} is a draft: drafts are not pushed"
                )),
                id,
                &[id.to_owned(), number.to_owned()],
            );
        }
        summary.add(
            ObjectKind::Invoices,
            Ending::Failed(
                "step 1 (upsert LagoInvoice ACME-004) was refused by HubSpot: HTTP 400: bad (correlation id 1234-abcd)"
                    .into(),
            ),
            "inv_4",
            &["inv_4".into(), "ACME-004".into()],
        );
        summary.add(ObjectKind::Invoices, Ending::Synced, "inv_5", &[]);
        summary.add(ObjectKind::Customers, Ending::Unchanged, "cus_1", &[]);

        assert_eq!(summary.skipped.len(), 1);
        assert_eq!(summary.skipped[0].count, 3);
        assert_eq!(
            summary.skipped[0].reason,
            "invoice … is a draft: drafts are not pushed"
        );
        assert_eq!(
            summary.failed[0].reason,
            "step 1 (upsert LagoInvoice …) was refused by HubSpot: HTTP 400: bad"
        );
        let invoices = summary.counts(ObjectKind::Invoices);
        assert_eq!(
            (invoices.synced, invoices.skipped, invoices.failed),
            (1, 3, 1)
        );
        assert_eq!(summary.total().records(), 6);
        assert!(!summary.is_success());

        let text = summary.to_string();
        assert!(
            text.contains("6 records: 1 synced, 1 unchanged, 3 skipped, 1 failed"),
            "{text}"
        );
        assert!(text.contains("3  invoices: invoice … is a draft"), "{text}");
        assert!(text.contains("(e.g. inv_1, inv_2, inv_3)"), "{text}");
    }
}
