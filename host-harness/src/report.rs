//! Plain-text tables for people reading a terminal: columns padded to their widest cell and,
//! on a terminal (or with `COLUMNS` set), fitted to its width. A table too wide cuts the middle
//! of its least important values first (`sampl…any.json`), leaves the least important columns
//! out if that is not enough, and wraps its last column (the outcome, the error) under itself,
//! so that stays whole and readable.

use std::io::IsTerminal as _;

/// How a column gives way when a table is wider than the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Give {
    /// Always whole: ids, states, counts.
    Never,
    /// Cut in the middle, down to a few characters, then left out if the last column still
    /// lacks room; rank 1 gives way before rank 2.
    Middle(u8),
    /// The last column only: wraps onto further lines, under itself.
    Wrap,
}

/// A column: its header and how it gives way.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    pub header: &'a str,
    pub give: Give,
}

/// A column that is always whole.
pub const fn whole(header: &str) -> Column<'_> {
    Column {
        header,
        give: Give::Never,
    }
}

/// A column cut in the middle when the table is too wide; `rank` 1 gives way first.
pub const fn cut(header: &str, rank: u8) -> Column<'_> {
    Column {
        header,
        give: Give::Middle(rank),
    }
}

/// The last column, wrapped under itself when the table is too wide.
pub const fn wrapped(header: &str) -> Column<'_> {
    Column {
        header,
        give: Give::Wrap,
    }
}

/// The width to fit tables to: the terminal's (`COLUMNS` first, as `ls` reads it), or
/// `COLUMNS` when set off a terminal; `None` (lines whole, for grep and scripts) otherwise.
pub fn output_width() -> Option<usize> {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0);
    if !std::io::stdout().is_terminal() {
        return columns;
    }
    columns.or_else(|| {
        console::Term::stdout()
            .size_checked()
            .map(|(_, width)| usize::from(width))
    })
}

/// Space between columns.
const GAP: &str = "  ";
/// A cut value keeps at least this many characters (with its `…`).
const NARROWEST_CUT: usize = 14;
/// The wrapped column keeps at least this many (or two fifths of a wider terminal) before the
/// others give way.
const COMFORTABLE_WRAP: usize = 28;
/// ... and at least this many in any case.
const NARROWEST_WRAP: usize = 16;

/// Column widths for a set of rows, fitted to a width: lays out the header and each row.
#[derive(Debug, Clone)]
pub struct Layout {
    widths: Vec<usize>,
    gives: Vec<Give>,
    /// Columns left out to fit.
    hidden: Vec<bool>,
    /// The wrapped column's width, when it must wrap.
    wrap: Option<usize>,
}

impl Layout {
    /// Widths for `rows`, fitted to `width` when given. Rows may leave the wrapped column out
    /// when its values are not known yet (`sync` prints each outcome as it comes): it then takes
    /// the room left.
    pub fn new(columns: &[Column<'_>], rows: &[Vec<String>], width: Option<usize>) -> Layout {
        let mut widths: Vec<usize> = columns.iter().map(|c| chars(c.header)).collect();
        for row in rows {
            for (widest, cell) in widths.iter_mut().zip(row) {
                *widest = (*widest).max(chars(cell));
            }
        }
        let mut layout = Layout {
            hidden: vec![false; widths.len()],
            widths,
            gives: columns.iter().map(|c| c.give).collect(),
            wrap: None,
        };
        if let Some(width) = width {
            let wrap_at = layout.gives.iter().position(|g| *g == Give::Wrap);
            let open = wrap_at.is_some_and(|at| rows.iter().all(|row| row.len() <= at));
            layout.fit(columns, width, open);
        }
        layout
    }

    /// The width the columns before the wrapped one take, with their gaps.
    fn others(&self) -> usize {
        let shown: Vec<usize> = (0..self.widths.len())
            .filter(|at| !self.hidden[*at])
            .collect();
        let widths: usize = shown
            .iter()
            .filter(|at| self.gives[**at] != Give::Wrap)
            .map(|at| self.widths[*at])
            .sum();
        widths + GAP.len() * shown.len().saturating_sub(1)
    }

    fn fit(&mut self, columns: &[Column<'_>], width: usize, open: bool) {
        let wrap_at = self.gives.iter().position(|g| *g == Give::Wrap);
        let natural = wrap_at.map_or(0, |at| if open { usize::MAX } else { self.widths[at] });
        // The last column's fair share: more of a wider terminal.
        let wanted = natural.min(COMFORTABLE_WRAP.max(width * 2 / 5));
        let mut ranks: Vec<(u8, usize)> = self
            .gives
            .iter()
            .enumerate()
            .filter_map(|(at, give)| match give {
                Give::Middle(rank) => Some((*rank, at)),
                _ => None,
            })
            .collect();
        ranks.sort();
        let whole_widths = self.widths.clone();
        // Cut the columns that give way, least important first; if that is not enough, leave
        // the least important out and cut the others again from their whole width.
        for dropped in 0..=ranks.len() {
            for &(_, at) in &ranks[..dropped] {
                self.hidden[at] = true;
            }
            for &(_, at) in &ranks[dropped..] {
                self.widths[at] = whole_widths[at];
            }
            for &(_, at) in &ranks[dropped..] {
                let over = (self.others() + wanted).saturating_sub(width);
                let floor = NARROWEST_CUT.max(chars(columns[at].header));
                self.widths[at] -= self.widths[at].saturating_sub(floor).min(over);
            }
            if self.others() + wanted <= width {
                break;
            }
        }
        if let Some(at) = wrap_at {
            let room = width.saturating_sub(self.others()).max(NARROWEST_WRAP);
            if natural > room {
                self.widths[at] = room;
                self.wrap = Some(room);
            }
        }
    }

    /// The header and its rule.
    pub fn header(&self, columns: &[Column<'_>]) -> String {
        let headers: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
        let rule: Vec<String> = self.widths.iter().map(|w| "─".repeat(*w)).collect();
        self.row(&headers) + &self.row(&rule)
    }

    /// One row, on as many lines as its wrapped cell needs, each ending in a newline.
    pub fn row(&self, cells: &[String]) -> String {
        let mut first = Vec::new();
        let mut rest = Vec::new();
        let mut indent = 0;
        let last = cells.len().saturating_sub(1);
        for (at, cell) in cells.iter().enumerate() {
            if self.hidden.get(at) == Some(&true) {
                continue;
            }
            let width = self.widths.get(at).copied().unwrap_or(0);
            let cell = match self.gives.get(at) {
                Some(Give::Middle(_)) => cut_middle(cell, width),
                Some(Give::Wrap) if self.wrap.is_some() => {
                    let mut lines = wrap(cell, width);
                    let head = lines.remove(0);
                    rest = lines;
                    head
                }
                _ => cell.clone(),
            };
            if at < last {
                indent += width + GAP.len();
                first.push(pad(&cell, width));
            } else {
                first.push(cell);
            }
        }
        let mut out = first.join(GAP).trim_end().to_owned() + "\n";
        for line in rest {
            out += &format!("{}{line}\n", " ".repeat(indent));
        }
        out
    }
}

/// Renders rows under headers with columns padded to their widest cell, whole.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns: Vec<Column<'_>> = headers.iter().map(|h| whole(h)).collect();
    fitted(&columns, rows, None)
}

/// Renders rows under their columns, fitted to `width` when given (see [`output_width`]).
pub fn fitted(columns: &[Column<'_>], rows: &[Vec<String>], width: Option<usize>) -> String {
    let layout = Layout::new(columns, rows, width);
    let mut out = layout.header(columns);
    for row in rows {
        out += &layout.row(row);
    }
    out
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

fn pad(text: &str, width: usize) -> String {
    format!("{text:<width$}")
}

/// `text` in at most `width` characters: its start and its end around a `…`.
pub fn cut_middle(text: &str, width: usize) -> String {
    let count = chars(text);
    if count <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    // The end says more (`….json`, `…_updated`): it keeps the larger part.
    let head = (width - 1) * 2 / 5;
    let tail = width - 1 - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

/// `text` in lines of at most `width` characters, broken at spaces where it can be.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = chars(&line);
            let space = usize::from(used > 0);
            if used + space + word.len() <= width {
                if space == 1 {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than a line: cut it.
            let rest = word.split_off(width);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines.iter().map(|l| l.trim_end().to_owned()).collect()
}

/// An amount as HubSpot holds it (`118.8`), shown with its currency's decimals (`118.80`; a
/// currency without subunits, like JPY or HUF, keeps none). Left as it is when the currency is
/// unknown or the amount is not a plain decimal.
pub fn amount(amount: &str, currency: &str) -> String {
    let Some(unit) = lago_hubspot_guest::currency::subunit_to_unit(currency) else {
        return amount.to_owned();
    };
    let decimals = unit.checked_ilog10().unwrap_or(0) as usize;
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let whole_digits = whole.strip_prefix('-').unwrap_or(whole);
    if whole_digits.is_empty() || !digits(whole_digits) || !digits(fraction) {
        return amount.to_owned();
    }
    if fraction.len() > decimals {
        return amount.to_owned();
    }
    if decimals == 0 {
        return whole.to_owned();
    }
    format!("{whole}.{fraction:0<decimals$}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_have_their_currencys_decimals() {
        use super::amount;
        assert_eq!(amount("118.8", "EUR"), "118.80");
        assert_eq!(amount("118", "USD"), "118.00");
        assert_eq!(amount("-5.5", "USD"), "-5.50");
        assert_eq!(amount("1951", "HUF"), "1951");
        assert_eq!(amount("12.345", "KWD"), "12.345");
        assert_eq!(amount("1.2", "KWD"), "1.200");
        assert_eq!(amount("", "EUR"), "");
        assert_eq!(amount("118.8", "XXX"), "118.8");
    }

    #[test]
    fn a_wide_table_cuts_its_least_important_values_then_wraps_its_last_column() {
        use super::{cut, fitted, whole, wrapped};
        let columns = [
            whole("state"),
            cut("file", 1),
            cut("event", 2),
            wrapped("outcome"),
        ];
        let outcome = "HubSpot answered 400: Property values were not valid (correlation id 1234)";
        let rows = [vec![
            "failed".to_owned(),
            "samples/events/a-very-long-name-of-an-export.json".to_owned(),
            "invoice.payment_status_updated".to_owned(),
            outcome.to_owned(),
        ]];
        let out = fitted(&columns, &rows, Some(80));
        assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
        // The file's start and its extension, around the cut.
        assert!(out.contains("sampl…ort.json"), "{out}");
        // The outcome is all there, word for word, each line under its column.
        let outcome_at = out.lines().next().unwrap().find("outcome").unwrap();
        let under_outcome: Vec<String> = out
            .lines()
            .skip(2)
            .map(|l| l.chars().skip(outcome_at).collect())
            .collect();
        assert!(under_outcome.len() > 1, "wrapped: {out}");
        assert_eq!(under_outcome.join(" "), outcome, "{out}");
        // Off a terminal: whole.
        let whole_table = fitted(&columns, &rows, None);
        assert!(whole_table.contains(&rows[0][1]) && whole_table.contains(outcome));
    }

    #[test]
    fn a_column_that_cannot_give_enough_is_left_out_and_the_others_cut_less() {
        use super::{cut, fitted, whole, wrapped};
        let columns = [
            whole("id"),
            cut("lago id", 1),
            cut("event", 2),
            wrapped("error"),
        ];
        let rows = [vec![
            "42".to_owned(),
            "8d1f3c5e-2b7a-4c19-9e3f-6a0b5d7c2e41".to_owned(),
            "invoice.payment_status_updated".to_owned(),
            "HubSpot answered 502 ".repeat(4),
        ]];
        let out = fitted(&columns, &rows, Some(60));
        let header = out.lines().next().unwrap();
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            ["id", "event", "error"],
            "{out}"
        );
        // Cut less than it was with the lago id beside it (`invoi…updated`).
        assert!(out.contains("invoice.pa…_status_updated"), "{out}");
        assert!(out.lines().all(|l| l.chars().count() <= 60), "{out}");
    }

    #[test]
    fn columns_line_up() {
        let out = super::table(
            &["id", "name"],
            &[
                vec!["1".into(), "Acme".into()],
                vec!["22".into(), "B".into()],
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "id  name");
        assert_eq!(lines[2], "1   Acme");
        assert_eq!(lines[3], "22  B");
    }
}
