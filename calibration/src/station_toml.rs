//! Write-back of calibrated values into a station file (docs/station.example.toml) without losing the
//! engineer's comments or layout: only the values named change, everything else stays byte for byte.
//! The original is kept as `<file>.bak` (`.bak.N` when that exists) and the new text replaces it by
//! rename, so a crash mid-write never leaves a half-written station file behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use toml_edit::{Array, DocumentMut, Item, Table, TableLike, Value};

/// Where a value goes: the `[[lane]]` table whose `id` matches, that lane's `[lane.lower]` table,
/// or a top-level table.
#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    Lane(String),
    LaneLower(String),
    Table(String),
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Section::Lane(id) => write!(f, "[[lane]] id = \"{id}\""),
            Section::LaneLower(id) => write!(f, "[lane.lower] of [[lane]] id = \"{id}\""),
            Section::Table(t) => write!(f, "[{t}]"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Float(f64),
    Int(i64),
    Floats(Vec<f64>),
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", to_value(self))
    }
}

#[derive(Debug, Clone)]
pub struct Edit {
    pub section: Section,
    pub key: String,
    pub val: Val,
}

impl Edit {
    pub fn new(section: Section, key: &str, val: Val) -> Edit {
        Edit {
            section,
            key: key.to_owned(),
            val,
        }
    }
}

/// Rounds to 4 decimals so an f32 result is written as `0.45`, not `0.44999998807907104`.
pub fn round4(v: f32) -> f64 {
    (f64::from(v) * 1e4).round() / 1e4
}

fn to_value(v: &Val) -> Value {
    match v {
        Val::Float(x) => Value::from(*x),
        Val::Int(i) => Value::from(*i),
        Val::Floats(xs) => Value::Array(xs.iter().copied().collect::<Array>()),
    }
}

/// The new value in the type the existing one has, or why that is impossible: the station refuses
/// a file whose types are wrong, so a silent change of type would only move the error to start-up.
fn converted(old: &Value, new: &Val, what: &str) -> Result<Value> {
    let mismatch = |want: &str| {
        anyhow!(
            "{what} is {} {old} in the file; refusing to replace it with {want} {new}",
            old.type_name()
        )
    };
    match (old, new) {
        (Value::Float(_), Val::Float(_)) | (Value::Integer(_), Val::Int(_)) => Ok(to_value(new)),
        (Value::Float(_), Val::Int(i)) => Ok(Value::from(*i as f64)),
        (Value::Array(a), Val::Floats(_)) => {
            if a.iter().all(|v| v.is_float() || v.is_integer()) {
                Ok(to_value(new))
            } else {
                Err(mismatch("a list of numbers"))
            }
        }
        (_, Val::Float(_)) => Err(mismatch("the float")),
        (_, Val::Int(_)) => Err(mismatch("the integer")),
        (_, Val::Floats(_)) => Err(mismatch("the list")),
    }
}

fn lane_table<'a>(doc: &'a mut DocumentMut, id: &str, origin: &Path) -> Result<&'a mut Table> {
    let lanes = match doc.get_mut("lane") {
        Some(Item::ArrayOfTables(a)) => a,
        Some(_) => bail!(
            "{}: `lane` is not an array of [[lane]] tables",
            origin.display()
        ),
        None => bail!("{}: no [[lane]] tables, so no lane {id}", origin.display()),
    };
    let ids: Vec<String> = lanes
        .iter()
        .map(|t| t.get("id").and_then(Item::as_str).unwrap_or("?").to_owned())
        .collect();
    let hits: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == id).collect();
    match hits.as_slice() {
        [one] => lanes
            .get_mut(*one)
            .ok_or_else(|| anyhow!("{}: lane {id} vanished", origin.display())),
        [] => bail!(
            "{}: no [[lane]] with id = \"{id}\" (lanes in the file: {})",
            origin.display(),
            ids.join(", ")
        ),
        _ => bail!(
            "{}: {} [[lane]] tables have id = \"{id}\"",
            origin.display(),
            hits.len()
        ),
    }
}

fn not_lower(origin: &Path, id: &str) -> anyhow::Error {
    anyhow!(
        "{}: lane {id}: `lower` is not a [lane.lower] table",
        origin.display()
    )
}

/// The lane's `[lane.lower]` table (or `lower = { … }`: then `true`), never created: a lower camera
/// needs its source and geometry, which only the engineer can give, and the station refuses a
/// `[lane.lower]` without them.
fn lower_table<'a>(
    doc: &'a mut DocumentMut,
    id: &str,
    origin: &Path,
) -> Result<(&'a mut dyn TableLike, bool)> {
    let lane = lane_table(doc, id, origin)?;
    match lane.get_mut("lower") {
        Some(item) => {
            let inline = item.is_inline_table();
            let table = item
                .as_table_like_mut()
                .ok_or_else(|| not_lower(origin, id))?;
            Ok((table, inline))
        }
        None => bail!(
            "{}: lane {id} has no [lane.lower] table, so there is no lower camera to store a \
             zone for; add [lane.lower] (source, below_m, focal_px) to the lane first",
            origin.display()
        ),
    }
}

fn top_table<'a>(doc: &'a mut DocumentMut, name: &str, origin: &Path) -> Result<&'a mut Table> {
    if !doc.contains_key(name) {
        let mut t = Table::new();
        // A blank line before the new header, as every section of the example file has.
        t.decor_mut().set_prefix("\n");
        doc.insert(name, Item::Table(t));
    }
    doc.get_mut(name)
        .and_then(Item::as_table_mut)
        .ok_or_else(|| anyhow!("{}: `{name}` is not a [{name}] table", origin.display()))
}

/// Applies `edits` to the station file text; `origin` names the file in errors.
pub fn edit(text: &str, origin: &Path, edits: &[Edit]) -> Result<String> {
    let mut doc: DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", origin.display()))?;
    for e in edits {
        let (table, inline): (&mut dyn TableLike, bool) = match &e.section {
            Section::Lane(id) => (lane_table(&mut doc, id, origin)?, false),
            Section::LaneLower(id) => lower_table(&mut doc, id, origin)?,
            Section::Table(name) => (top_table(&mut doc, name, origin)?, false),
        };
        let what = format!("{}: {} {}", origin.display(), e.section, e.key);
        match table.get_mut(&e.key) {
            Some(Item::Value(old)) => {
                let mut new = converted(old, &e.val, &what)?;
                // Keeps `key = value   # why` comments and the spacing around the value.
                *new.decor_mut() = old.decor().clone();
                *old = new;
            }
            Some(other) => bail!("{what} is a {}, not a value", other.type_name()),
            None => {
                if inline {
                    // The space before an inline table's `}` belongs to its last value; moved on
                    // to the new last value, so no `0.5 , zone = …` appears.
                    if let Some((_, Item::Value(last))) = table.iter_mut().last() {
                        last.decor_mut().set_suffix("");
                    }
                }
                table.insert(&e.key, Item::Value(to_value(&e.val)));
            }
        }
    }
    let out = doc.to_string();
    // Never write something the station (or the next run) cannot read back.
    out.parse::<DocumentMut>()
        .with_context(|| format!("{}: the edited file would not parse", origin.display()))?;
    Ok(out)
}

/// The first free `<file>.bak`, `<file>.bak.1`, `<file>.bak.2`, …
fn backup_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".bak");
    let first = PathBuf::from(&p);
    if !first.exists() {
        return first;
    }
    (1u32..)
        .map(|n| {
            let mut q = p.clone();
            q.push(format!(".{n}"));
            PathBuf::from(q)
        })
        .find(|q| !q.exists())
        .unwrap_or(first)
}

/// Applies `edits` to the station file at `path`; returns the backup's path.
pub fn write(path: &Path, edits: &[Edit]) -> Result<PathBuf> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let out = edit(&text, path, edits)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    let backup = backup_path(path);
    fs::copy(path, &backup).with_context(|| format!("backing up to {}", backup.display()))?;
    // Same folder, so the rename stays on one filesystem and is atomic.
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
        if let Ok(meta) = fs::metadata(path) {
            fs::set_permissions(&tmp, meta.permissions())?;
        }
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!(
            "writing {} (via {})",
            path.display(),
            tmp.display()
        )));
    }
    Ok(backup)
}

fn read_doc(path: &Path) -> Result<DocumentMut> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))
}

fn number(item: &Item) -> Option<f64> {
    item.as_float()
        .or_else(|| item.as_integer().map(|i| i as f64))
}

/// What `gate-calibrate lane` reads of one lane: its camera's source and zone, and its lower
/// camera's when it has a `[lane.lower]` table. A zone is `None` where the file sets none (the
/// whole frame).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaneViews {
    pub source: Option<String>,
    pub zone: Option<[f64; 4]>,
    pub lower: Option<LowerView>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LowerView {
    pub source: Option<String>,
    pub zone: Option<[f64; 4]>,
}

fn zone_in(t: &dyn TableLike, what: &str, origin: &Path) -> Result<Option<[f64; 4]>> {
    let Some(z) = t.get("zone") else {
        return Ok(None);
    };
    let bad = || {
        anyhow!(
            "{}: {what}: zone must be [x0, y0, x1, y1]",
            origin.display()
        )
    };
    let v: Vec<f64> = z
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let zone: [f64; 4] = v.try_into().map_err(|_| bad())?;
    Ok(Some(zone))
}

fn source_in(t: &dyn TableLike) -> Option<String> {
    t.get("source").and_then(Item::as_str).map(str::to_owned)
}

/// Lane `id` of the station file text; `origin` names the file in errors.
pub fn lane_in(text: &str, origin: &Path, id: &str) -> Result<LaneViews> {
    let mut doc: DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", origin.display()))?;
    let lane = lane_table(&mut doc, id, origin)?;
    let lower = match lane.get("lower") {
        None => None,
        Some(item) => {
            let t = item.as_table_like().ok_or_else(|| not_lower(origin, id))?;
            Some(LowerView {
                source: source_in(t),
                zone: zone_in(t, &format!("lane {id} [lane.lower]"), origin)?,
            })
        }
    };
    Ok(LaneViews {
        source: source_in(lane),
        zone: zone_in(lane, &format!("lane {id}"), origin)?,
        lower,
    })
}

/// Lane `id` of the station file at `path`.
pub fn read_lane(path: &Path, id: &str) -> Result<LaneViews> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    lane_in(&text, path, id)
}

/// A number from a top-level table, if the file sets it.
pub fn read_number(path: &Path, table: &str, key: &str) -> Result<Option<f64>> {
    let doc = read_doc(path)?;
    Ok(doc.get(table).and_then(|t| t.get(key)).and_then(number))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATION: &str = r#"# Station file with comments.
[station]
id = "s1"   # the station

[[lane]]
id = "L1"
zone = [0.1, 0.0, 0.9, 1.0]
threshold = 0.40   # tuned by hand

[[lane]]
# second lane
id = "L2"
source = "test:"
threshold = 0.45 # keep this comment
k = 3

[decision]
threshold = 0.45
"#;

    fn o() -> &'static Path {
        Path::new("station.toml")
    }

    #[test]
    fn changes_only_the_values() {
        let out = edit(
            STATION,
            o(),
            &[
                Edit::new(Section::Lane("L2".into()), "threshold", Val::Float(0.5)),
                Edit::new(
                    Section::Lane("L2".into()),
                    "zone",
                    Val::Floats(vec![0.2, 0.0, 0.8, 1.0]),
                ),
                Edit::new(Section::Table("decision".into()), "margin", Val::Float(0.1)),
            ],
        )
        .unwrap();
        let want = STATION
            .replace(
                "threshold = 0.45 # keep this comment\nk = 3\n",
                "threshold = 0.5 # keep this comment\nk = 3\nzone = [0.2, 0.0, 0.8, 1.0]\n",
            )
            .replace(
                "[decision]\nthreshold = 0.45\n",
                "[decision]\nthreshold = 0.45\nmargin = 0.1\n",
            );
        assert_eq!(out, want);
    }

    #[test]
    fn adds_a_missing_table() {
        let out = edit(
            STATION,
            o(),
            &[Edit::new(
                Section::Table("lighting".into()),
                "low",
                Val::Float(0.3),
            )],
        )
        .unwrap();
        assert_eq!(out, format!("{STATION}\n[lighting]\nlow = 0.3\n"));
    }

    #[test]
    fn integer_into_float_key_becomes_float() {
        let out = edit(
            STATION,
            o(),
            &[Edit::new(
                Section::Table("decision".into()),
                "threshold",
                Val::Int(1),
            )],
        )
        .unwrap();
        assert!(out.contains("[decision]\nthreshold = 1.0\n"), "{out}");
    }

    #[test]
    fn refusals() {
        let lane = |id: &str, key: &str, v: Val| {
            edit(STATION, o(), &[Edit::new(Section::Lane(id.into()), key, v)])
                .unwrap_err()
                .to_string()
        };
        let e = lane("L9", "threshold", Val::Float(0.5));
        assert!(
            e.contains("no [[lane]] with id = \"L9\"") && e.contains("L1, L2"),
            "{e}"
        );
        let e = lane("L2", "k", Val::Float(2.5));
        assert!(e.contains("k is integer"), "{e}");
        let e = lane("L2", "source", Val::Float(2.5));
        assert!(e.contains("source is string"), "{e}");
        let e = lane("L1", "zone", Val::Float(0.5));
        assert!(e.contains("zone is array"), "{e}");
        let e = edit("[[lane]\nid=", o(), &[]).unwrap_err();
        assert!(format!("{e:#}").contains("not valid TOML"), "{e:#}");
        let e = edit(
            "decision = 3\n",
            o(),
            &[Edit::new(
                Section::Table("decision".into()),
                "k",
                Val::Int(2),
            )],
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a [decision] table"), "{e}");
    }

    const TWO_CAMERAS: &str = r#"[[lane]]
id = "L1"
source = "file:///footage/L1.mp4"
zone = [0.1, 0.0, 0.9, 1.0]

[lane.lower]   # the child-height camera
source = "file:///footage/L1_lower.mp4"
zone = [0.0, 0.3, 1.0, 1.0]   # its own frame
below_m = 0.5
focal_px = 473.0

[[lane]]
id = "L2"
source = "test:"
lower = { source = "test:", below_m = 0.4, focal_px = 500.0 }

[[lane]]
id = "L3"
source = "test:"

[decision]
threshold = 0.45
"#;

    fn zone(section: Section, z: [f64; 4]) -> Edit {
        Edit::new(section, "zone", Val::Floats(z.to_vec()))
    }

    fn lower(id: &str) -> Section {
        Section::LaneLower(id.into())
    }

    #[test]
    fn reads_both_cameras_of_a_lane() {
        let l1 = lane_in(TWO_CAMERAS, o(), "L1").unwrap();
        assert_eq!(l1.source.as_deref(), Some("file:///footage/L1.mp4"));
        assert_eq!(l1.zone, Some([0.1, 0.0, 0.9, 1.0]));
        let want = LowerView {
            source: Some("file:///footage/L1_lower.mp4".into()),
            zone: Some([0.0, 0.3, 1.0, 1.0]),
        };
        assert_eq!(l1.lower, Some(want));
        let l2 = lane_in(TWO_CAMERAS, o(), "L2").unwrap().lower.unwrap();
        assert_eq!((l2.source.as_deref(), l2.zone), (Some("test:"), None));
        assert_eq!(lane_in(TWO_CAMERAS, o(), "L3").unwrap().lower, None);
        for (text, want) in [
            ("lower = 2", "not a [lane.lower] table"),
            ("[lane.lower]\nzone = [0, 1]", "[lane.lower]: zone must be"),
        ] {
            let e = lane_in(&format!("[[lane]]\nid = \"L1\"\n{text}\n"), o(), "L1").unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[test]
    fn lower_zone_goes_into_the_lower_table_only() {
        let out = edit(
            TWO_CAMERAS,
            o(),
            &[zone(lower("L1"), [0.2, 0.25, 0.8, 1.0])],
        )
        .unwrap();
        let want = TWO_CAMERAS.replace(
            "zone = [0.0, 0.3, 1.0, 1.0]   # its own frame",
            "zone = [0.2, 0.25, 0.8, 1.0]   # its own frame",
        );
        assert_eq!(out, want);

        // A lower table without a zone gets one at its end, inline or not.
        let out = edit(
            &TWO_CAMERAS.replace("zone = [0.0, 0.3, 1.0, 1.0]   # its own frame\n", ""),
            o(),
            &[
                zone(lower("L1"), [0.0, 0.5, 1.0, 1.0]),
                zone(lower("L2"), [0.1, 0.2, 0.9, 1.0]),
            ],
        )
        .unwrap();
        for part in [
            "focal_px = 473.0\nzone = [0.0, 0.5, 1.0, 1.0]\n\n[[lane]]\nid = \"L2\"",
            "lower = { source = \"test:\", below_m = 0.4, focal_px = 500.0, zone = [0.1, 0.2, 0.9, 1.0] }",
        ] {
            assert!(out.contains(part), "{part} in {out}");
        }

        // The lane camera's zone of a lane with a lower table lands above its [lane.lower] header.
        let out = edit(
            &TWO_CAMERAS.replace("zone = [0.1, 0.0, 0.9, 1.0]\n", ""),
            o(),
            &[zone(Section::Lane("L1".into()), [0.3, 0.0, 0.7, 1.0])],
        )
        .unwrap();
        let l1 = lane_in(&out, o(), "L1").unwrap();
        assert_eq!(l1.zone, Some([0.3, 0.0, 0.7, 1.0]));
        assert_eq!(l1.lower.unwrap().zone, Some([0.0, 0.3, 1.0, 1.0]));
        assert!(out.ends_with(&TWO_CAMERAS[TWO_CAMERAS.find("\n[lane.lower]").unwrap()..]));
    }

    #[test]
    fn lower_zone_needs_a_lower_table() {
        let e = edit(TWO_CAMERAS, o(), &[zone(lower("L3"), [0.0, 0.0, 1.0, 1.0])]).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("lane L3 has no [lane.lower] table") && e.contains("add [lane.lower]"),
            "{e}"
        );
    }

    #[test]
    fn write_keeps_a_backup_and_numbers_backups() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("station.toml");
        fs::write(&p, STATION).unwrap();
        let edits = [Edit::new(Section::Lane("L1".into()), "k", Val::Int(2))];
        let b0 = write(&p, &edits).unwrap();
        assert_eq!(b0, dir.path().join("station.toml.bak"));
        assert_eq!(fs::read_to_string(&b0).unwrap(), STATION);
        let b1 = write(&p, &edits).unwrap();
        assert_eq!(b1, dir.path().join("station.toml.bak.1"));
        assert!(fs::read_to_string(&p).unwrap().contains("k = 2\n"));
        assert_eq!(
            read_lane(&p, "L1").unwrap().zone,
            Some([0.1, 0.0, 0.9, 1.0])
        );
        assert_eq!(read_lane(&p, "L2").unwrap().zone, None);
        assert_eq!(
            read_number(&p, "decision", "threshold").unwrap(),
            Some(0.45)
        );
        // No temp files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }
}
