//! The digest card ([`digest_card`]): the findings folded during a burst, most severe first,
//! each reachable with `/finding <id>`, and how many were left out.
//!
//! Pure, like all of [`super`].

use super::{enforce_limits, severity_color, Card, Field, COLOR_NEUTRAL, FIELD_BY_SEVERITY};
use crate::discord::text::{
    code, code_inner, fit_lines, CODE_CAP, MAX_DESCRIPTION, TRUNCATION_MARKER,
};
use crate::finding::SeverityLabel;

/// The digest of findings folded during a burst: `(finding id, finding type, severity)` for
/// each listed finding, most severe first, each reachable with `/finding <id>`; `omitted` more
/// were not even listed. Every one of them is stored; only the post was saved.
pub fn digest_card(findings: &[(String, String, SeverityLabel)], omitted: usize) -> Card {
    let mut sorted: Vec<&(String, String, SeverityLabel)> = findings.iter().collect();
    // Stable: equal severities keep their arrival order.
    sorted.sort_by_key(|f| std::cmp::Reverse(f.2));
    let mut counts = [0usize; 4];
    for f in findings {
        counts[f.2 as usize] += 1;
    }
    render(&sorted, counts, omitted, findings.len() + omitted)
}

/// The lines of an open digest, bounded however long the burst: the [`DigestLines::KEPT`] most
/// severe (equal severities in arrival order), which is more than one message shows, and a
/// count per severity of every line. A burst of 100,000 findings keeps 100 lines, not 100,000.
#[derive(Debug, Clone, Default)]
pub struct DigestLines {
    kept: Vec<(String, String, SeverityLabel)>,
    /// By `SeverityLabel as usize` (Low, Medium, High, Critical).
    counts: [usize; 4],
}

impl DigestLines {
    /// Lines kept for the message.
    pub const KEPT: usize = 100;

    /// Adds `(finding id, finding type, severity)`.
    pub fn push(&mut self, line: (String, String, SeverityLabel)) {
        self.counts[line.2 as usize] += 1;
        // After every line at least as severe: the arrival order within a severity holds.
        let at = self.kept.partition_point(|k| k.2 >= line.2);
        if at < Self::KEPT {
            self.kept.insert(at, line);
            self.kept.truncate(Self::KEPT);
        }
    }

    /// How many lines were added.
    pub fn len(&self) -> usize {
        self.counts.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lines kept, most severe first.
    pub fn kept(&self) -> &[(String, String, SeverityLabel)] {
        &self.kept
    }
}

impl FromIterator<(String, String, SeverityLabel)> for DigestLines {
    fn from_iter<I: IntoIterator<Item = (String, String, SeverityLabel)>>(iter: I) -> Self {
        let mut lines = DigestLines::default();
        for line in iter {
            lines.push(line);
        }
        lines
    }
}

/// The digest of every line of `lines` ([`digest_card`] with the lines not kept counted as not
/// listed, and the count per severity of all of them).
pub fn digest_card_of(lines: &DigestLines) -> Card {
    let sorted: Vec<&(String, String, SeverityLabel)> = lines.kept.iter().collect();
    render(
        &sorted,
        lines.counts,
        lines.len() - lines.kept.len(),
        lines.len(),
    )
}

/// `sorted`: the listed lines, most severe first; `counts`: per severity, what the severity
/// field shows; `omitted`: lines not even listed; `total`: every line.
fn render(
    sorted: &[&(String, String, SeverityLabel)],
    counts: [usize; 4],
    omitted: usize,
    total: usize,
) -> Card {
    let lines: Vec<String> = sorted
        .iter()
        .map(|(id, kind, sev)| {
            format!(
                "**{}** {} · `/finding {}`",
                sev.as_str(),
                code(kind),
                code_inner(id, CODE_CAP)
            )
        })
        .collect();
    // Findings not even listed count as left out: the marker always says how many are not
    // shown, and room for it is kept when every listed line fits.
    let more = |left: usize| {
        format!(
            "{TRUNCATION_MARKER} (+{} more, see `/findings`)",
            left + omitted
        )
    };
    let reserve = if omitted > 0 {
        more(0).chars().count() + 1
    } else {
        0
    };
    let (mut description, left) = fit_lines("", &lines, MAX_DESCRIPTION - reserve, more);
    if left == 0 && omitted > 0 {
        if !description.is_empty() {
            description.push('\n');
        }
        description.push_str(&more(0));
    }

    let count = |label: SeverityLabel| counts[label as usize];
    let mut by_severity = [
        SeverityLabel::Critical,
        SeverityLabel::High,
        SeverityLabel::Medium,
        SeverityLabel::Low,
    ]
    .iter()
    .map(|&l| format!("{} {}", l.as_str(), count(l)))
    .collect::<Vec<_>>()
    .join(" · ");
    if omitted > 0 {
        by_severity.push_str(&format!(" · {omitted} not listed"));
    }

    let color = [
        SeverityLabel::Critical,
        SeverityLabel::High,
        SeverityLabel::Medium,
        SeverityLabel::Low,
    ]
    .into_iter()
    .find(|l| count(*l) > 0)
    .map(severity_color)
    .unwrap_or(COLOR_NEUTRAL);
    let mut card = Card {
        title: format!("Digest: {total} findings held back during a burst"),
        url: None,
        description,
        color,
        fields: vec![Field::new(FIELD_BY_SEVERITY, by_severity, false)],
        footer: "Every finding is stored and has its request; open one with /finding <id>."
            .to_string(),
        buttons: Vec::new(),
    };
    enforce_limits(&mut card);
    card
}
