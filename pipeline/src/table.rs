//! Tables for people (ctl status, the journal, the run report, the demo's decisions): comfy-table,
//! without borders, so every line still starts with its first cell for grep and eyes alike.

/// A plain table for a terminal or a log: a header row, columns as wide as their content, the
/// `right` columns (numbers) aligned right, no borders, each line starting with its first cell.
pub fn table(header: &[&str], right: &[usize], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    for (i, c) in t.column_iter_mut().enumerate() {
        c.set_padding((0, 1));
        if right.contains(&i) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    t.trim_fmt() + "\n"
}

/// `text` with every line indented by `by` (a table nested under a heading).
pub fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}
