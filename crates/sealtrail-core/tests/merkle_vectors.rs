//! Runs the transparency-dev/merkle proof vectors against the verifier.
//!
//! The vectors live outside the repository; `SEALTRAIL_MERKLE_VECTORS` names their
//! `testdata` directory (a relative path is taken from the workspace root; in CI it is
//! `../shared/testdata/merkle/testdata`). Every file under its `inclusion/` and
//! `consistency/` directories is run: happy vectors must verify and `wantErr` vectors must be
//! rejected. The `subtreeinclusion/` and `subtreeconsistency/` directories are skipped: they
//! test proofs for arbitrary subtrees, an API sealtrail does not have.
//!
//! Without the variable the test is skipped, except under CI (`CI` set), where the vectors are
//! required and their absence fails the test.
//!
//! # Values that are not 32 bytes
//!
//! The vectors spell some values with the wrong length on purpose: empty strings for missing
//! hashes and 12-byte "don't care" placeholders for roots. sealtrail's [`Hash`] is 32 bytes by
//! construction, so such a value cannot reach the verifier as it is. Rejecting it while
//! parsing would make the vector pass without exercising the verifier, and would wrongly fail
//! the one happy vector that uses placeholders (`sizes-are-equal-one-and-proof-is-empty`:
//! equal placeholder roots at equal sizes must verify, since only their equality matters). So
//! each such value is replaced by a 32-byte stand-in derived from its bytes and its role
//! (leaf, root or proof hash): equal values in the same role stay equal, and a stand-in equals
//! no real hash and no value in another role, just as a value of the wrong length can never
//! equal a real 32-byte hash. Every vector, happy or not, therefore runs through the verifier.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sealtrail_core::merkle::{root_from_inclusion, verify_consistency, verify_inclusion};
use sealtrail_core::{Hash, leaf_hash};
use serde_json::Value;

const VAR: &str = "SEALTRAIL_MERKLE_VECTORS";

#[derive(Clone, Copy)]
enum Role {
    Leaf,
    Root,
    Proof,
}

/// The vectors directory, or `None` when the test should be skipped.
fn vectors_dir() -> Option<PathBuf> {
    let Some(value) = std::env::var_os(VAR) else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{VAR} is not set: the Merkle test vectors are required in CI \
                 (set it to ../shared/testdata/merkle/testdata)"
            );
        }
        eprintln!("skipped: {VAR} not set (set it to ../shared/testdata/merkle/testdata)");
        return None;
    };
    let path = PathBuf::from(value);
    if path.is_absolute() {
        return Some(path);
    }
    let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Some(workspace_root.join(path))
}

/// Every `.json` file under `dir`, in a stable order.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read vector directory {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

struct Vector {
    fields: Value,
    /// Whether any value had to be replaced by a stand-in.
    stand_ins: bool,
}

impl Vector {
    fn load(path: &Path) -> Result<Vector, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let fields = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
        Ok(Vector {
            fields,
            stand_ins: false,
        })
    }

    fn field(&self, name: &str) -> Result<&Value, String> {
        self.fields
            .get(name)
            .ok_or_else(|| format!("missing field {name:?}"))
    }

    fn u64(&self, name: &str) -> Result<u64, String> {
        self.field(name)?
            .as_u64()
            .ok_or_else(|| format!("field {name:?} is not an unsigned integer"))
    }

    fn want_err(&self) -> Result<bool, String> {
        self.field("wantErr")?
            .as_bool()
            .ok_or_else(|| "field \"wantErr\" is not a boolean".to_owned())
    }

    fn hash(&mut self, name: &str, role: Role) -> Result<Hash, String> {
        let text = self.field(name)?.as_str().map(str::to_owned);
        let text = text.ok_or_else(|| format!("field {name:?} is not a string"))?;
        self.decode(&text, role)
    }

    /// `proof` is either null (no hashes) or an array of base64 strings.
    fn proof(&mut self) -> Result<Vec<Hash>, String> {
        let items = match self.field("proof")? {
            Value::Null => return Ok(Vec::new()),
            Value::Array(items) => items.clone(),
            _ => return Err("field \"proof\" is neither null nor an array".to_owned()),
        };
        items
            .iter()
            .map(|item| {
                let text = item.as_str().ok_or("a proof hash is not a string")?;
                self.decode(text, Role::Proof)
            })
            .collect()
    }

    fn decode(&mut self, text: &str, role: Role) -> Result<Hash, String> {
        let bytes = BASE64
            .decode(text)
            .map_err(|e| format!("{text:?} is not base64: {e}"))?;
        if let Ok(hash) = Hash::from_slice(&bytes) {
            return Ok(hash);
        }
        // See the module documentation.
        self.stand_ins = true;
        let tag: &[u8] = match role {
            Role::Leaf => b"leaf",
            Role::Root => b"root",
            Role::Proof => b"proof",
        };
        Ok(leaf_hash(
            &[
                b"sealtrail vector stand-in for a ".as_slice(),
                tag,
                b":",
                &bytes,
            ]
            .concat(),
        ))
    }
}

/// Runs one vector file; `Ok(stand_ins)` when the verifier agreed with its `wantErr`.
type Runner = fn(&Path) -> Result<bool, String>;

/// Runs one inclusion vector; `Ok(stand_ins)` when the verifier agreed with `wantErr`.
fn run_inclusion(path: &Path) -> Result<bool, String> {
    let mut v = Vector::load(path)?;
    let index = v.u64("leafIdx")?;
    let size = v.u64("treeSize")?;
    let root = v.hash("root", Role::Root)?;
    let leaf = v.hash("leafHash", Role::Leaf)?;
    let proof = v.proof()?;
    let want_err = v.want_err()?;
    let result = verify_inclusion(index, size, &leaf, &proof, &root);
    match (want_err, result) {
        (false, Ok(())) => {
            let computed = root_from_inclusion(index, size, &leaf, &proof);
            if computed != Ok(root) {
                return Err(format!("root_from_inclusion gave {computed:?}"));
            }
        }
        (true, Err(_)) => {}
        (false, Err(e)) => return Err(format!("valid proof rejected: {e}")),
        (true, Ok(())) => return Err("invalid proof accepted".to_owned()),
    }
    Ok(v.stand_ins)
}

/// Runs one consistency vector; `Ok(stand_ins)` when the verifier agreed with `wantErr`.
fn run_consistency(path: &Path) -> Result<bool, String> {
    let mut v = Vector::load(path)?;
    let from = v.u64("size1")?;
    let to = v.u64("size2")?;
    let from_root = v.hash("root1", Role::Root)?;
    let to_root = v.hash("root2", Role::Root)?;
    let proof = v.proof()?;
    let want_err = v.want_err()?;
    match (
        want_err,
        verify_consistency(from, to, &from_root, &to_root, &proof),
    ) {
        (false, Ok(())) | (true, Err(_)) => Ok(v.stand_ins),
        (false, Err(e)) => Err(format!("valid proof rejected: {e}")),
        (true, Ok(())) => Err("invalid proof accepted".to_owned()),
    }
}

#[test]
fn transparency_dev_vectors() {
    let Some(dir) = vectors_dir() else {
        return;
    };
    assert!(
        dir.is_dir(),
        "{VAR} names {}, which is not a directory",
        dir.display()
    );
    let dir = dir.canonicalize().unwrap_or(dir);
    let mut failures = Vec::new();
    let mut stand_in_vectors = 0;
    let mut counts = [0usize; 2];
    let suites: [(&str, Runner); 2] = [
        ("inclusion", run_inclusion),
        ("consistency", run_consistency),
    ];
    for (i, (name, run)) in suites.into_iter().enumerate() {
        let files = json_files(&dir.join(name));
        assert!(
            !files.is_empty(),
            "no {name} vectors under {}",
            dir.join(name).display()
        );
        for file in files {
            counts[i] += 1;
            match run(&file) {
                Ok(stand_ins) => stand_in_vectors += usize::from(stand_ins),
                Err(e) => failures.push(format!("{}: {e}", file.display())),
            }
        }
    }
    eprintln!(
        "ran {} inclusion and {} consistency vectors from {} ({stand_in_vectors} with values \
         that are not 32 bytes)",
        counts[0],
        counts[1],
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        counts[0] + counts[1],
        failures.join("\n")
    );
}
