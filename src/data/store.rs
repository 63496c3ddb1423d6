//! Dataset files: Parquet (default) with the metadata as a file-level key-value entry, or CSV with
//! the metadata in a JSON sidecar of the same stem. One column `t`, then one per variable.
//!
//! Writes go to a temporary file in the destination folder and are renamed into place, so an
//! interrupted or failed write never leaves a partial file behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use polars::prelude::*;

use super::{Dataset, DatasetMeta};
use crate::error::{Error, Result};

/// The Parquet key-value entry that holds the JSON metadata.
pub const META_KEY: &str = "chaoscast";

/// On-disk format of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet with the metadata inside.
    Parquet,
    /// Comma-separated values with a JSON sidecar.
    Csv,
}

impl Format {
    /// CSV for a `.csv` extension, Parquet otherwise.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Parquet,
        }
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "parquet" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            other => Err(Error::config(
                "format",
                format!("'{other}' is not a format; use parquet or csv"),
            )),
        }
    }
}

/// The JSON sidecar that holds a CSV file's metadata: the same path with extension `.json`.
pub fn sidecar_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

/// Checks, before any work is done, that `path` can be written: not a folder, in an existing
/// folder, and absent unless `overwrite`.
pub fn check_output(path: &Path, format: Format, overwrite: bool) -> Result<()> {
    if path.is_dir() {
        return Err(Error::storage(path, "it is a folder, not a file name"));
    }
    let parent = parent_dir(path);
    if parent.exists() && !parent.is_dir() {
        return Err(Error::storage(
            path,
            format!("{} is not a folder", parent.display()),
        ));
    }
    if !parent.is_dir() {
        return Err(Error::storage(
            path,
            format!("the folder {} does not exist", parent.display()),
        ));
    }
    let mut targets = vec![path.to_path_buf()];
    if format == Format::Csv {
        targets.push(sidecar_path(path));
    }
    match targets.into_iter().find(|p| p.exists()) {
        Some(existing) if !overwrite => Err(Error::OutputExists { path: existing }),
        _ => Ok(()),
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes a dataset atomically in `format`; refuses to replace an existing file unless
/// `overwrite`.
pub fn write_dataset(ds: &Dataset, path: &Path, format: Format, overwrite: bool) -> Result<()> {
    write_dataset_observed(ds, path, format, overwrite, &mut || {})
}

/// [`write_dataset`], calling `between` after each step that changes what is on disk while a
/// CSV pair is replaced (the tests read the files there, as a crash would leave them).
fn write_dataset_observed(
    ds: &Dataset,
    path: &Path,
    format: Format,
    overwrite: bool,
    between: &mut dyn FnMut(),
) -> Result<()> {
    check_output(path, format, overwrite)?;
    let meta = serde_json::to_string_pretty(&ds.meta)
        .map_err(|e| Error::storage(path, format!("cannot encode the metadata: {e}")))?;
    let mut frame = to_frame(ds).map_err(|e| Error::storage(path, e))?;
    match format {
        Format::Parquet => {
            let (out, file) = AtomicFile::create(path)?;
            let kv = KeyValueMetadata::from_static(vec![(META_KEY.to_string(), meta)]);
            ParquetWriter::new(&file)
                .with_key_value_metadata(Some(kv))
                .finish(&mut frame)
                .map_err(|e| Error::storage(path, e))?;
            out.commit(file)
        }
        Format::Csv => {
            let side_path = sidecar_path(path);
            let (side, mut side_file) = AtomicFile::create(&side_path)?;
            side_file
                .write_all(meta.as_bytes())
                .map_err(|e| Error::io("write", &side_path, e))?;
            let (out, mut file) = AtomicFile::create(path)?;
            CsvWriter::new(&mut file)
                .include_header(true)
                .finish(&mut frame)
                .map_err(|e| Error::storage(path, e))?;
            // The CSV goes first and the old sidecar before it, so no moment pairs a recipe with
            // a CSV it does not describe: a crash leaves the old pair, the new pair, or a CSV
            // without a recipe (which reads as an error).
            match std::fs::remove_file(&side_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &side_path, e)),
            }
            between();
            out.commit(file)?;
            between();
            side.commit(side_file)
        }
    }
}

/// Reads a dataset with its metadata (from inside a Parquet file or a CSV file's JSON sidecar).
pub fn read_dataset(path: &Path) -> Result<Dataset> {
    let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
    let (frame, meta) = match Format::from_path(path) {
        Format::Parquet => {
            let mut reader = ParquetReader::new(file);
            let meta_json = reader
                .get_metadata()
                .map_err(|e| Error::storage(path, format!("not a readable Parquet file ({e})")))?
                .key_value_metadata()
                .as_ref()
                .and_then(|kv| kv.iter().find(|e| e.key == META_KEY))
                .and_then(|e| e.value.clone())
                .ok_or_else(|| {
                    Error::storage(
                        path,
                        "it carries no chaoscast recipe (not made by chaoscast?)",
                    )
                })?;
            let frame = reader
                .finish()
                .map_err(|e| Error::storage(path, format!("not a readable Parquet file ({e})")))?;
            (frame, meta_json)
        }
        Format::Csv => {
            let side = sidecar_path(path);
            let meta_json = std::fs::read_to_string(&side).map_err(|e| {
                Error::storage(
                    path,
                    format!("its recipe {} cannot be read ({e})", side.display()),
                )
            })?;
            drop(file);
            let frame = CsvReadOptions::default()
                .with_has_header(true)
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(|r| r.finish())
                .map_err(|e| Error::storage(path, format!("not a readable CSV file ({e})")))?;
            (frame, meta_json)
        }
    };
    let version: serde_json::Value = serde_json::from_str(&meta)
        .map_err(|e| Error::storage(path, format!("its recipe is not valid ({e})")))?;
    match version["format_version"].as_u64() {
        Some(v) if v == u64::from(super::DATASET_FORMAT_VERSION) => {}
        Some(v) => {
            return Err(Error::storage(
                path,
                format!(
                    "it was written in dataset format {v}, and this chaoscast reads format {}; \
                     regenerate it (or use the chaoscast that wrote it)",
                    super::DATASET_FORMAT_VERSION
                ),
            ));
        }
        None => return Err(Error::storage(path, "its recipe has no format_version")),
    }
    let meta: DatasetMeta = serde_json::from_value(version)
        .map_err(|e| Error::storage(path, format!("its recipe is not valid ({e})")))?;
    from_frame(&frame, meta, path)
}

/// A plain table of numbers: column names and row-major values, as `predict` reads and writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names.
    pub names: Vec<String>,
    /// Values, `rows × names.len()`, row-major.
    pub values: Vec<f64>,
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.names.len().max(1)
    }

    /// The columns `names` (in that order) as rows of `f32`; every name must be present.
    pub fn rows_of(&self, names: &[String], path: &Path) -> Result<Vec<Vec<f32>>> {
        let cols: Vec<usize> = names
            .iter()
            .map(|n| {
                self.names.iter().position(|m| m == n).ok_or_else(|| {
                    Error::storage(
                        path,
                        format!(
                            "it has no column '{n}' (the model reads {})",
                            names.join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let width = self.names.len();
        Ok(self
            .values
            .chunks_exact(width)
            .map(|row| cols.iter().map(|&j| row[j] as f32).collect())
            .collect())
    }

    /// One column by name.
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let j = self.names.iter().position(|m| m == name)?;
        Some(
            self.values
                .iter()
                .skip(j)
                .step_by(self.names.len())
                .copied()
                .collect(),
        )
    }
}

/// Reads any CSV (with a header) or Parquet file of numeric columns; no recipe needed.
pub fn read_table(path: &Path) -> Result<Table> {
    let frame = match Format::from_path(path) {
        Format::Parquet => {
            let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
            ParquetReader::new(file)
                .finish()
                .map_err(|e| Error::storage(path, format!("not a readable Parquet file ({e})")))?
        }
        Format::Csv => {
            std::fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
            CsvReadOptions::default()
                .with_has_header(true)
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(|r| r.finish())
                .map_err(|e| Error::storage(path, format!("not a readable CSV file ({e})")))?
        }
    };
    let bad = |reason: String| Error::storage(path, reason);
    let names: Vec<String> = frame
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    if names.is_empty() || frame.height() == 0 {
        return Err(bad("it has no rows or no columns".into()));
    }
    let mut values = vec![0.0; frame.height() * names.len()];
    for (j, c) in frame.columns().iter().enumerate() {
        let cast = c
            .cast(&DataType::Float64)
            .map_err(|e| bad(format!("column {} is not numeric ({e})", c.name())))?;
        let col = cast.f64().map_err(|e| bad(e.to_string()))?;
        if col.null_count() > 0 {
            return Err(bad(format!(
                "column {} has missing or non-numeric values",
                c.name()
            )));
        }
        for (i, v) in col.into_no_null_iter().enumerate() {
            values[i * names.len() + j] = v;
        }
    }
    Ok(Table { names, values })
}

/// Writes a table atomically as CSV or Parquet (by extension); refuses to replace an existing
/// file unless `overwrite`.
pub fn write_table(table: &Table, path: &Path, overwrite: bool) -> Result<()> {
    if path.exists() && !overwrite {
        return Err(Error::OutputExists {
            path: path.to_path_buf(),
        });
    }
    let columns: Vec<Column> = table
        .names
        .iter()
        .map(|n| Column::new(n.as_str().into(), table.column(n).unwrap_or_default()))
        .collect();
    let mut frame = DataFrame::new(table.rows(), columns).map_err(|e| Error::storage(path, e))?;
    let (out, mut file) = AtomicFile::create(path)?;
    match Format::from_path(path) {
        Format::Parquet => {
            ParquetWriter::new(&mut file)
                .finish(&mut frame)
                .map_err(|e| Error::storage(path, e))?;
        }
        Format::Csv => {
            CsvWriter::new(&mut file)
                .include_header(true)
                .finish(&mut frame)
                .map_err(|e| Error::storage(path, e))?;
        }
    }
    out.commit(file)
}

fn to_frame(ds: &Dataset) -> PolarsResult<DataFrame> {
    let mut columns = Vec::with_capacity(ds.vars() + 2);
    columns.push(Column::new("t".into(), ds.t.clone()));
    if ds.meta.recipe.trajectories > 1 {
        let trajectory: Vec<u32> = ds
            .segments()
            .iter()
            .enumerate()
            .flat_map(|(k, r)| std::iter::repeat_n(k as u32, r.len()))
            .collect();
        columns.push(Column::new("trajectory".into(), trajectory));
    }
    for (j, name) in ds.names.iter().enumerate() {
        columns.push(Column::new(name.as_str().into(), ds.column(j)));
    }
    DataFrame::new(ds.len(), columns)
}

fn from_frame(frame: &DataFrame, meta: DatasetMeta, path: &Path) -> Result<Dataset> {
    let columns = frame.columns();
    let bad = |reason: String| Error::storage(path, reason);
    if columns.first().map(|c| c.name().as_str()) != Some("t") {
        return Err(bad("its first column is not 't'".into()));
    }
    meta.recipe
        .validate()
        .map_err(|e| bad(format!("its recipe is not valid ({e})")))?;
    let expected = meta.recipe.system.build(&meta.recipe.params)?.var_names();
    // An ensemble file has a trajectory column after t: 0 for the first `samples` rows, and so on.
    let first_var = if meta.recipe.trajectories > 1 { 2 } else { 1 };
    if first_var == 2 {
        let (n, samples) = (meta.recipe.trajectories, meta.recipe.samples);
        let column = columns
            .get(1)
            .filter(|c| c.name().as_str() == "trajectory")
            .ok_or_else(|| {
                bad("its recipe has several trajectories but no 'trajectory' column".into())
            })?;
        let cast = column
            .cast(&DataType::Float64)
            .map_err(|e| bad(format!("column trajectory is not numeric ({e})")))?;
        let ids = cast.f64().map_err(|e| bad(e.to_string()))?;
        let expected_ids = (0..n).flat_map(|k| std::iter::repeat_n(k as f64, samples));
        if ids.len() != n * samples
            || ids.null_count() > 0
            || ids.into_no_null_iter().ne(expected_ids)
        {
            return Err(bad(format!(
                "its trajectory column does not hold {n} trajectories of {samples} rows each, in order"
            )));
        }
    }
    let names: Vec<String> = columns[first_var..]
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    if names != expected {
        return Err(bad(format!(
            "its columns do not match its recipe: expected {} variables ({} ...), found {}",
            expected.len(),
            expected
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            names.len()
        )));
    }
    let read = |c: &Column| -> Result<Vec<f64>> {
        let cast = c
            .cast(&DataType::Float64)
            .map_err(|e| bad(format!("column {} is not numeric ({e})", c.name())))?;
        let values = cast.f64().map_err(|e| bad(e.to_string()))?;
        if values.null_count() > 0 {
            return Err(bad(format!("column {} has missing values", c.name())));
        }
        Ok(values.into_no_null_iter().collect())
    };
    let finite = |c: &Column, values: &[f64]| -> Result<()> {
        match values.iter().position(|v| !v.is_finite()) {
            Some(i) => Err(Error::NonFiniteInput {
                what: path.display().to_string(),
                at: format!("row {} of column {}", i + 1, c.name()),
            }),
            None => Ok(()),
        }
    };
    let t = read(&columns[0])?;
    finite(&columns[0], &t)?;
    let mut values = vec![0.0; t.len() * names.len()];
    for (j, c) in columns[first_var..].iter().enumerate() {
        let column = read(c)?;
        finite(c, &column)?;
        for (i, v) in column.into_iter().enumerate() {
            values[i * names.len() + j] = v;
        }
    }
    Ok(Dataset {
        meta,
        names,
        t,
        values,
    })
}

/// A file written under a temporary name beside its destination and renamed into place by
/// [`AtomicFile::commit`]; dropped uncommitted, it removes the temporary file.
pub(crate) struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary file for `dest`.
    pub(crate) fn create(dest: &Path) -> Result<(Self, File)> {
        let name = dest
            .file_name()
            .ok_or_else(|| Error::storage(dest, "it has no file name"))?
            .to_string_lossy();
        let tmp = parent_dir(dest).join(format!(".{name}.{}.tmp", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io("create", dest, e))?;
        Ok((
            Self {
                tmp,
                dest: dest.to_path_buf(),
                committed: false,
            },
            file,
        ))
    }

    /// Flushes `file` to disk and renames it into place.
    pub(crate) fn commit(mut self, file: File) -> Result<()> {
        file.sync_all()
            .map_err(|e| Error::io("write", &self.dest, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io("write", &self.dest, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{RecipeSpec, generate};
    use crate::progress::NoProgress;
    use crate::systems::SystemName;

    /// Replacing a CSV dataset never leaves a recipe beside values it does not describe: read at
    /// every step of the replacement (where a crash could stop it), the pair is the old one, an
    /// error, or the new one. (Committing the sidecar first paired the new recipe with the old
    /// values.)
    #[test]
    fn a_csv_pair_is_never_mismatched_mid_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        let data = |seed| {
            let mut spec = RecipeSpec::for_system(SystemName::Thomas);
            spec.samples = Some(50);
            spec.seed = Some(seed);
            generate(&spec.resolve().unwrap(), &NoProgress).unwrap()
        };
        let (old, new) = (data(0), data(1));
        write_dataset(&old, &path, Format::Csv, false).unwrap();
        let mut seen = Vec::new();
        write_dataset_observed(&new, &path, Format::Csv, true, &mut || {
            seen.push(match read_dataset(&path) {
                Ok(d) if d.values == old.values && d.meta == old.meta => "old",
                Ok(d) if d.values == new.values && d.meta == new.meta => "new",
                Ok(_) => "mismatched",
                Err(_) => "error",
            });
        })
        .unwrap();
        assert_eq!(seen, ["error", "error"]);
        let back = read_dataset(&path).unwrap();
        assert_eq!((back.values, back.meta), (new.values, new.meta));
    }
}
