//! A model directory's safetensors: sharded through `*.safetensors.index.json` (a `weight_map`
//! of tensor name → shard file, whatever the shard names), or plain `*.safetensors` files.

use crate::safetensors::{SafetensorsFile, StTensor};
use rmlx_core::{Array, DType, Error, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Every tensor of a set of safetensors files, looked up by name.
pub struct SafetensorsSet {
    files: Vec<SafetensorsFile>,
    /// name → (file, position in that file's header), in file then header order.
    order: Vec<(String, usize, usize)>,
    map: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

fn list_dir(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("safetensors: listing {}", dir.display()), e))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    out.sort();
    Ok(out)
}

impl SafetensorsSet {
    /// A directory: through its index if it has one, else all its `*.safetensors` files.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let index = dir.join(INDEX_FILE);
        let index = if index.is_file() {
            Some(index)
        } else {
            list_dir(dir, ".safetensors.index.json")?.into_iter().next()
        };
        if let Some(index) = index {
            return Self::open_index(dir, &index);
        }
        // Some repositories ship `model.safetensors` next to a differently named copy of the
        // same weights (e.g. `consolidated.safetensors`): the standard name wins.
        let standard = dir.join("model.safetensors");
        let paths = if standard.is_file() {
            vec![standard]
        } else {
            list_dir(dir, ".safetensors")?
        };
        if paths.is_empty() {
            return Err(Error::format(format!(
                "safetensors: expected *.safetensors files in {}, found none",
                dir.display()
            )));
        }
        let files = paths
            .iter()
            .map(SafetensorsFile::open)
            .collect::<Result<Vec<_>>>()?;
        Self::from_files(files)
    }

    pub fn open_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_files(vec![SafetensorsFile::open(path)?])
    }

    fn open_index(dir: &Path, index: &Path) -> Result<Self> {
        let ctx = format!("safetensors index {}", index.display());
        let text = std::fs::read_to_string(index).map_err(|e| Error::io(&ctx, e))?;
        Self::from_index(&ctx, &text, |shard| {
            let path = dir.join(shard);
            if !path.is_file() {
                return Ok(None);
            }
            SafetensorsFile::open(path).map(Some)
        })
    }

    /// A set from the text of an index file, its shards opened by `open_shard` (file name →
    /// the parsed shard, or None when there is no such file). `ctx` names the index in errors.
    /// Shard names must be plain file names; every tensor must be in the shard the index says.
    pub fn from_index(
        ctx: &str,
        text: &str,
        mut open_shard: impl FnMut(&str) -> Result<Option<SafetensorsFile>>,
    ) -> Result<Self> {
        let idx: Index = serde_json::from_str(text)
            .map_err(|e| Error::format(format!("{ctx}: invalid JSON: {e}")))?;
        let mut shards: Vec<&str> = idx.weight_map.values().map(String::as_str).collect();
        shards.sort_unstable();
        shards.dedup();
        let mut files = Vec::with_capacity(shards.len());
        for shard in &shards {
            // Shards live in the directory itself: refuse paths that would leave it.
            if shard.contains('/') || shard.contains('\\') || *shard == ".." || shard.is_empty() {
                return Err(Error::format(format!(
                    "{ctx}: expected a shard file name, found '{shard}'"
                )));
            }
            match open_shard(shard)? {
                Some(f) => files.push(f),
                None => {
                    let tensor = idx
                        .weight_map
                        .iter()
                        .find(|(_, s)| s == shard)
                        .map_or("", |(t, _)| t);
                    return Err(Error::format(format!(
                        "{ctx}: shard '{shard}' (holding '{tensor}') not found next to the index"
                    )));
                }
            }
        }
        let set = Self::from_files(files)?;
        for (name, shard) in &idx.weight_map {
            let in_shard = set.map.get(name).map(|&i| set.files[set.order[i].1].path());
            if in_shard.and_then(Path::file_name).and_then(|n| n.to_str()) != Some(shard.as_str()) {
                return Err(Error::format(format!(
                    "{ctx}: expected tensor '{name}' in shard '{shard}', found {}",
                    in_shard.map_or("no such tensor".to_string(), |p| p.display().to_string())
                )));
            }
        }
        Ok(set)
    }

    /// A set of already parsed files; a tensor name in two files is an error.
    pub fn from_files(files: Vec<SafetensorsFile>) -> Result<Self> {
        let mut order = Vec::new();
        let mut map = HashMap::new();
        for (fi, f) in files.iter().enumerate() {
            for (ti, t) in f.tensors().iter().enumerate() {
                if let Some(&prev) = map.get(&t.name) {
                    let (_, pf, _): &(String, usize, usize) = &order[prev];
                    return Err(Error::format(format!(
                        "safetensors: tensor '{}' is in both {} and {}",
                        t.name,
                        files[*pf].path().display(),
                        f.path().display()
                    )));
                }
                map.insert(t.name.clone(), order.len());
                order.push((t.name.clone(), fi, ti));
            }
        }
        Ok(SafetensorsSet { files, order, map })
    }

    pub fn files(&self) -> &[SafetensorsFile] {
        &self.files
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// All tensors, file by file in header order.
    pub fn tensors(&self) -> impl Iterator<Item = &StTensor> {
        self.order
            .iter()
            .map(|(_, f, t)| &self.files[*f].tensors()[*t])
    }

    pub fn info(&self, name: &str) -> Option<&StTensor> {
        self.map.get(name).map(|&i| {
            let (_, f, t) = &self.order[i];
            &self.files[*f].tensors()[*t]
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    fn file_of(&self, name: &str) -> Result<&SafetensorsFile> {
        match self.map.get(name) {
            Some(&i) => Ok(&self.files[self.order[i].1]),
            None => Err(Error::format(format!(
                "safetensors: no tensor named '{name}'"
            ))),
        }
    }

    pub fn get(&self, name: &str) -> Result<Array> {
        self.file_of(name)?.get(name)
    }

    /// The tensor's bytes viewed with another dtype and shape of the same byte size.
    pub fn get_as(&self, name: &str, dtype: DType, shape: &[usize]) -> Result<Array> {
        self.file_of(name)?.get_as(name, dtype, shape)
    }
}
